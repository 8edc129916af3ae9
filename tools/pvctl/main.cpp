// pvctl: see pvctl.hpp. All logic is in pv_pvctl so tests run the same code.
#include <iostream>
#include <string>
#include <vector>

#include "pvctl.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  return pv::pvctl::Run(words, std::cout, std::cerr);
}

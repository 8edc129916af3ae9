// pvctl: see pvctl.hpp. All logic is in pv_pvctl so tests run the same code.
#include <iostream>

#include "pvctl.hpp"

int main(int argc, char** argv) {
  return pv::pvctl::Run({argv + 1, argv + argc}, std::cout, std::cerr);
}

// A candidate for ingest's event-driven front (issue 8), measured by bench/ingest: bare GNU
// libmicrohttpd 0.9.75 answering 204 to every request once its body has been read, with no auth,
// parsing or Kafka. MHD_USE_EPOLL_INTERNAL_THREAD with a pool of N threads (each its own epoll
// loop, all accepting on the shared listen socket); HTTP/1.1 keep-alive (MHD's default); one
// persistent empty response shared by every answer. Connection limit 10,000 (MHD's default is
// FD_SETSIZE - 4, split over the pool), SOMAXCONN backlog, no connection timeout.
//
//   pv-bench-mhd-204 PORT [THREADS]      THREADS defaults to the number of cores; binds 127.0.0.1
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

MHD_Response* g_no_content = nullptr;
int g_request_marker = 0;

// Called once when a request's header is in, once per chunk of body, and once more at its end.
MHD_Result Answer(void* /*cls*/, MHD_Connection* connection, const char* /*url*/, const char* /*method*/,
                  const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                  void** req_cls) {
  if (*req_cls == nullptr) {  // header only: ask for the body
    *req_cls = &g_request_marker;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {  // a piece of the body: consume it
    *upload_data_size = 0;
    return MHD_YES;
  }
  return MHD_queue_response(connection, MHD_HTTP_NO_CONTENT, g_no_content);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: pv-bench-mhd-204 PORT [THREADS]\n");
    return 2;
  }
  const auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  unsigned threads =
      argc == 3 ? static_cast<unsigned>(std::atoi(argv[2])) : std::thread::hardware_concurrency();
  if (threads == 0) {
    threads = 1;
  }

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  // Blocked before the pool starts, so that every thread inherits the mask and sigwait gets them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  g_no_content = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
  MHD_Daemon* daemon =
      MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, port, nullptr, nullptr, &Answer,
                       nullptr, MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),  //
                       MHD_OPTION_THREAD_POOL_SIZE, threads,                               //
                       MHD_OPTION_CONNECTION_LIMIT, 10000U,                                //
                       MHD_OPTION_LISTEN_BACKLOG_SIZE, static_cast<unsigned>(SOMAXCONN), MHD_OPTION_END);
  if (daemon == nullptr) {
    std::fprintf(stderr, "pv-bench-mhd-204: could not start on 127.0.0.1:%u\n", port);
    return 1;
  }

  // The pool threads serve; this one waits for SIGTERM or SIGINT, then stops the daemon.
  int sig = 0;
  sigwait(&stop, &sig);
  MHD_stop_daemon(daemon);
  MHD_destroy_response(g_no_content);
  return 0;
}

#include "signals.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pgt::cli {

namespace {

volatile std::sig_atomic_t stop_flag = 0;
int pipe_fds[2] = {-1, -1};

extern "C" void on_stop_signal(int /*signo*/) {
    const int saved = errno;
    stop_flag = 1;
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = write(pipe_fds[1], &byte, 1);  // non-blocking
    errno = saved;
}

}  // namespace

void install_stop_handlers() {
    if (pipe_fds[0] >= 0) {
        return;
    }
    if (pipe(pipe_fds) != 0) {
        throw std::runtime_error(std::string("pipe() failed: ") + std::strerror(errno));
    }
    for (int fd : pipe_fds) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa = {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() {
    return stop_flag != 0;
}

int stop_fd() {
    return pipe_fds[0];
}

bool wait_unless_stopped(double seconds) {
    using clock = std::chrono::steady_clock;
    const auto deadline =
        clock::now() + std::chrono::duration_cast<clock::duration>(
                           std::chrono::duration<double>(seconds > 0 ? seconds : 0));
    while (!stop_requested()) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            return true;
        }
        pollfd p = {stop_fd(), POLLIN, 0};
        poll(&p, stop_fd() >= 0 ? 1 : 0, static_cast<int>(left));  // EINTR: loop re-checks
    }
    return false;
}

}  // namespace pgt::cli

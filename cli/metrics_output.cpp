#include "metrics_output.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/prometheus.h"
#include "errors.h"
#include "signals.h"

namespace pgt::cli {

namespace {

constexpr std::size_t max_request_bytes = 8192;
constexpr int request_timeout_ms = 5000;

std::string errno_text() {
    return std::strerror(errno);
}

// Closes a descriptor when it goes out of scope.
class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

struct Address {
    std::string host;  // empty: every interface
    std::string port;
};

Address parse_listen(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon + 1 == listen.size()) {
        throw UsageError("--listen wants HOST:PORT (e.g. 127.0.0.1:9187), got \"" + listen + "\"");
    }
    Address a{listen.substr(0, colon), listen.substr(colon + 1)};
    if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
        a.host = a.host.substr(1, a.host.size() - 2);
    }
    if (a.port.find_first_not_of("0123456789") != std::string::npos || a.port.size() > 5 ||
        std::stoi(a.port) > 65535) {
        throw UsageError("--listen: invalid port \"" + a.port + "\"");
    }
    return a;
}

int open_listener(const Address& a) {
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    const int rc =
        getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), a.port.c_str(), &hints, &res);
    if (rc != 0) {
        throw UsageError("--listen: cannot resolve \"" + a.host + "\": " + gai_strerror(rc));
    }
    std::string why;
    int fd = -1;
    for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            why = errno_text();
            continue;
        }
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
            why = errno_text();
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        throw CommandError("cannot listen on " + a.host + ":" + a.port + ": " + why,
                           "Choose another address or port with --listen.");
    }
    return fd;
}

// "host:port" of a bound socket.
std::string bound_address(int fd) {
    sockaddr_storage ss = {};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
}

// Reads the request head (up to the blank line); empty on timeout, EOF or oversize.
std::string read_request_head(int fd) {
    std::string head;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(request_timeout_ms);
    while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || head.size() > max_request_bytes || stop_requested() ||
            poll(&p, 1, static_cast<int>(left)) <= 0) {
            return {};
        }
        char buf[1024];
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            return {};
        }
        head.append(buf, static_cast<std::size_t>(n));
    }
    return head;
}

void send_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;  // the scraper went away; nothing to do
        }
        off += static_cast<std::size_t>(n);
    }
}

std::string response(int status, const char* reason, std::string_view type, const std::string& body,
                     bool head_only) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    r += "Content-Type: " + std::string(type) + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "Connection: close\r\n\r\n";
    if (!head_only) {
        r += body;
    }
    return r;
}

void handle(int fd, const std::function<std::string()>& scrape, const Console& console) {
    const std::string head = read_request_head(fd);
    if (head.empty()) {
        return;
    }
    const std::string line = head.substr(0, head.find_first_of("\r\n"));
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
        send_all(fd, response(400, "Bad Request", "text/plain", "bad request\n", false));
        return;
    }
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    console.debug("http: " + method + " " + path);
    const bool head_only = method == "HEAD";
    if (path != "/metrics") {
        send_all(fd, response(404, "Not Found", "text/plain",
                              "not found: metrics are served at /metrics\n", head_only));
        return;
    }
    if (method != "GET" && !head_only) {
        send_all(fd, response(405, "Method Not Allowed", "text/plain",
                              "only GET and HEAD are allowed\n", false));
        return;
    }
    std::string body;
    try {
        body = scrape();
    } catch (const std::exception& e) {
        console.error(std::string("scrape failed: ") + e.what());
        send_all(fd, response(500, "Internal Server Error", "text/plain",
                              std::string("scrape failed: ") + e.what() + "\n", head_only));
        return;
    }
    send_all(fd, response(200, "OK", prometheus::content_type, body, head_only));
}

}  // namespace

void serve_metrics(const std::string& listen, const std::function<std::string()>& scrape,
                   const Console& console) {
    const Address address = parse_listen(listen);
    install_stop_handlers();
    const Fd listener(open_listener(address));
    console.info("serving metrics on http://" + bound_address(listener.get()) +
                 "/metrics (stop with Ctrl-C)");
    while (!stop_requested()) {
        pollfd p[2] = {{listener.get(), POLLIN, 0}, {stop_fd(), POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw CommandError("poll() failed while serving metrics: " + errno_text());
        }
        if (!(p[0].revents & POLLIN)) {
            continue;
        }
        const Fd client(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (client.get() >= 0) {
            handle(client.get(), scrape, console);
        }
    }
    console.info("stopped serving metrics");
}

void write_file_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    const auto fail = [&](const std::string& what) {
        const std::string why = errno_text();
        unlink(tmp.c_str());
        throw CommandError("cannot write " + path + ": " + what + ": " + why,
                           "Check that the directory exists and is writable.");
    };
    const Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
        fail("open " + tmp);
    }
    std::size_t off = 0;
    while (off < text.size()) {
        const ssize_t n = write(fd.get(), text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fail("write");
        }
        off += static_cast<std::size_t>(n);
    }
    if (fsync(fd.get()) != 0) {
        fail("fsync");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        fail("rename");
    }
}

}  // namespace pgt::cli

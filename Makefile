# xwan — see README.md. `sudo make demo` runs the lab, `sudo make test` the tests.

GO        ?= go
DEB_PKGS  := clang llvm libbpf-dev linux-libc-dev bpftool iproute2 iputils-ping \
             iperf3 tcpdump openssl bird2 util-linux ethtool prometheus
BPF_SRC   := $(wildcard bpf/*.c)
BPF_HDRS  := $(wildcard bpf/include/*.h)
ARCH_INC  := /usr/include/$(shell uname -m)-linux-gnu
TEST_TIMEOUT ?= 40m

.PHONY: all build deps generate lint test bench-classifier bench-tunnel bench-failover demo clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# Installs the Debian packages xwan needs (as root), or prints the command.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "deps: missing packages; run:"; echo "  sudo apt-get install -y $$missing"; exit 1; \
	fi

# Rebuilds the committed bpf2go output from bpf/*.c (needs clang).
generate:
	$(GO) generate ./loader/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for f in $(BPF_SRC); do \
		clang -O2 -g -Wall -Werror -target bpf -I$(ARCH_INC) -c $$f -o /dev/null || exit 1; \
	done; echo "clang -Wall -Werror: $(BPF_SRC) clean"

test: deps lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

bench-classifier: deps
	$(GO) run ./cmd/xwan-bench classifier

# Blackhole the active link under a 200 packet/s stream (lab, 3 trials).
bench-failover: deps
	$(GO) run ./cmd/xwan-bench failover

# iperf3 TCP 10 s, 1 and 4 streams: xwan vs wireguard-go vs plain (lab).
bench-tunnel: deps
	$(GO) run ./cmd/xwan-bench tunnel

demo: deps build
	bin/xwan-lab demo

clean:
	rm -rf bin

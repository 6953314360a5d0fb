# closeduel: the two commands a fresh machine needs are `make lab` and
# `make test` (run as root). Both install what they need first.

GO ?= go
# LAB_PACKAGES run the lab; TEST_PACKAGES add what the tests compare with
# (tshark, the C anchor's library, headless Chromium for the HTML report).
LAB_PACKAGES := iptables iproute2 ethtool tcpdump util-linux procps pkg-config gcc make liblwip-dev
TEST_PACKAGES := $(LAB_PACKAGES) tshark libnetfilter-queue-dev libnfnetlink-dev chromium
BIN := bin/closeduel
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: deps-lab deps-test build lab test bench clean

# deps-* install the Debian packages that are missing, and the Go modules.
deps-lab: PACKAGES = $(LAB_PACKAGES)
deps-test: PACKAGES = $(TEST_PACKAGES)
deps-lab deps-test:
	@missing=""; for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

build: deps-lab
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/closeduel

# lab runs the default experiment on the built-in bench (needs root).
lab: build
	./$(BIN) lab

# test runs formatting and vet checks and every test, the real-kernel ones
# included (they need root; without it they skip and say so).
test: deps-test
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# bench runs the interleaved speed comparison against the anchors.
bench: deps-test build
	./$(BIN) bench

clean:
	rm -rf bin

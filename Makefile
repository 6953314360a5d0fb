# closeduel: the two commands a fresh machine needs are `make lab` and
# `make test` (run as root). Both install what they need first.

GO ?= go
# LAB_PACKAGES run the lab; TEST_PACKAGES add what the tests compare with
# (tshark, the C anchor's library, headless Chromium for the HTML report,
# jq for the log's interop, systemd's systemd-analyze for the unit check,
# systemd-container's systemd-nspawn to boot systemd for the service test,
# ping for the deployment test's other traffic, zsh and fish for the shell
# completion test, nftables' nft for run --vlan-tags' bridge rule).
LAB_PACKAGES := iptables iproute2 ethtool tcpdump util-linux procps pkg-config gcc make liblwip-dev
TEST_PACKAGES := $(LAB_PACKAGES) tshark libnetfilter-queue-dev libnfnetlink-dev chromium jq systemd systemd-container iputils-ping zsh fish nftables
BIN := bin/closeduel
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# DIST_FLAGS make reproducible static binaries with the version stamped.
DIST_FLAGS := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: deps-lab deps-test promtool udev-deb build lab test bench dist clean

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

# promtool checks the metrics' names (metrics tests). Debian ships it only
# in the prometheus package (19 MB, with a server and a service), so only
# promtool is taken out of that package, nothing is installed or started.
promtool:
	@command -v promtool >/dev/null || { \
		d=$$(mktemp -d) && cd $$d && \
		{ apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
		install -m 0755 usr/bin/promtool /usr/local/bin/promtool && echo "installed promtool from Debian's prometheus package"; \
		s=$$?; rm -rf $$d; exit $$s; }

# udev-deb fetches Debian's udev package, of the installed systemd's
# version, for the service test (TestSystemdService), which unpacks it into
# its container only: the host gets no udevd (whose rules would act on
# every test's interfaces); the container's udevd gives systemd its device
# units, so the unit's BindsTo= on the bridge is tested as shipped.
UDEV_DEB := /var/cache/closeduel/udev.deb
udev-deb:
	@v=$$(dpkg-query -W -f='$${Version}' systemd); \
	test -e /lib/systemd/systemd-udevd || [ "$$(dpkg-deb -f $(UDEV_DEB) Version 2>/dev/null)" = "$$v" ] || { \
		d=$$(mktemp -d) && cd $$d && \
		{ apt-get download udev=$$v >/dev/null 2>&1 || { apt-get update -qq && apt-get download udev=$$v >/dev/null 2>&1; }; } && \
		mkdir -p $(dir $(UDEV_DEB)) && mv udev_*.deb $(UDEV_DEB) && echo "fetched udev $$v into $(UDEV_DEB)"; \
		s=$$?; rm -rf $$d; exit $$s; }

build: deps-lab
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/closeduel

# lab runs the hypothesis matrix on the built-in bench (needs root): every
# library experiment against the lwIP device and the Linux control, at once.
lab: build
	./$(BIN) lab --matrix

# test runs formatting and vet checks and every test, the real-kernel ones
# included (they need root; without it they skip and say so).
test: deps-test promtool udev-deb dist
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# bench runs the interleaved speed comparison against the anchors.
bench: deps-test build
	./$(BIN) bench --rounds 5 --duration 3s --mode kernel --mode c-anchor --mode closeduel --mode closeduel+log --mode closeduel+log+nopoll --mode closeduel+log+2q --mode closeduel+log+rt --mode closeduel+20rules --delay-rate 1000 --delay-rate 20000

# dist cross-builds static binaries (CGO off) for linux/amd64, arm64 and
# armv7 into dist/, with the version stamped, and checks the stamp and
# that they are static. make test runs it (a warm build cache takes seconds).
dist:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build $(DIST_FLAGS) -o dist/closeduel-$(VERSION)-linux-amd64 ./cmd/closeduel
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(DIST_FLAGS) -o dist/closeduel-$(VERSION)-linux-arm64 ./cmd/closeduel
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(DIST_FLAGS) -o dist/closeduel-$(VERSION)-linux-armv7 ./cmd/closeduel
	@for f in dist/closeduel-$(VERSION)-linux-*; do \
		$(GO) version -m $$f | grep -q 'CGO_ENABLED=0' || { echo "$$f: not a static (CGO_ENABLED=0) build"; exit 1; }; \
	done
	@v=$$(./dist/closeduel-$(VERSION)-linux-amd64 --version); \
		[ "$$v" = "closeduel version $(VERSION)" ] || { echo "dist: --version says '$$v', want 'closeduel version $(VERSION)'"; exit 1; }
	cd dist && sha256sum closeduel-$(VERSION)-linux-* > SHA256SUMS
	@echo "dist: $(VERSION) for linux/amd64, linux/arm64, linux/armv7 in dist/"

clean:
	rm -rf bin dist

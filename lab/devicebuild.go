package lab

import (
	"context"
	"crypto/sha256"
	_ "embed" // the device program's source
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed device/device.c
var deviceSource []byte

// DevicePackages names the Debian packages the lwIP device needs to build
// and run.
const DevicePackages = "gcc pkg-config liblwip-dev"

// DeviceSource returns the C source of the lwIP device program.
func DeviceSource() []byte { return deviceSource }

// DeviceBuild is the compiled lwIP device program.
type DeviceBuild struct {
	// Path is the executable.
	Path string
	// SourceHash is the SHA-256 of the source (hex), which keys the cache.
	SourceHash string
	// LwIPVersion is what pkg-config says of lwip, e.g. "2.1.3";
	// Package the Debian version of liblwip0 when dpkg knows it.
	LwIPVersion, Package string
	// Cached says the executable was already built.
	Cached bool
}

// BuildDevice compiles the embedded device program with cc against
// Debian's lwIP (pkg-config lwip, -lpthread) into cacheDir, keyed by the
// source's hash, unless it is there already. An empty cacheDir means the
// user's cache directory.
func BuildDevice(ctx context.Context, cacheDir string) (DeviceBuild, error) {
	sum := sha256.Sum256(deviceSource)
	b := DeviceBuild{SourceHash: hex.EncodeToString(sum[:])}
	if cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return b, fmt.Errorf("lab: device build: no cache directory: %w", err)
		}
		cacheDir = filepath.Join(dir, "closeduel")
	}
	for _, tool := range []string{"cc", "pkg-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			return b, fmt.Errorf("lab: building the lwIP device needs %s (apt-get install %s): %w", tool, DevicePackages, err)
		}
	}
	flags, err := exec.CommandContext(ctx, "pkg-config", "--cflags", "--libs", "lwip").Output()
	if err != nil {
		return b, fmt.Errorf("lab: building the lwIP device needs Debian's lwIP (apt-get install %s): pkg-config lwip: %w", DevicePackages, err)
	}
	if v, err := exec.CommandContext(ctx, "pkg-config", "--modversion", "lwip").Output(); err == nil {
		b.LwIPVersion = strings.TrimSpace(string(v))
	}
	if v, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", "liblwip0").Output(); err == nil {
		b.Package = "liblwip0 " + strings.TrimSpace(string(v))
	}
	b.Path = filepath.Join(cacheDir, "closeduel-device-"+b.SourceHash[:16])
	if fi, err := os.Stat(b.Path); err == nil && fi.Mode()&0o111 != 0 {
		b.Cached = true
		return b, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return b, fmt.Errorf("lab: device build: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return b, fmt.Errorf("lab: device build: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "device.c")
	if err := os.WriteFile(src, deviceSource, 0o644); err != nil {
		return b, fmt.Errorf("lab: device build: %w", err)
	}
	out := filepath.Join(tmp, "closeduel-device")
	args := append([]string{"-O2", "-Wall", "-o", out, src}, strings.Fields(string(flags))...)
	args = append(args, "-lpthread")
	if msg, err := exec.CommandContext(ctx, "cc", args...).CombinedOutput(); err != nil {
		return b, fmt.Errorf("lab: compiling the lwIP device (cc %s): %w\n%s\n(the build needs: apt-get install %s)",
			strings.Join(args, " "), err, strings.TrimSpace(string(msg)), DevicePackages)
	}
	if err := os.Rename(out, b.Path); err != nil {
		return b, fmt.Errorf("lab: device build: %w", err)
	}
	return b, nil
}

package verdictlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/closeduel/closeduel/nfq"
	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// The Ethernet addresses the tagged fixture events carry.
var (
	fixtureDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x99}
	fixtureSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

// writeVLANEvents logs an untagged segment, an 802.1Q VLAN 10 one, an
// untagged one, an 802.1ad VLAN 4094 IPv6 one and returns the files.
func writeVLANEvents(t *testing.T) (jsonPath, pcapPath string) {
	t.Helper()
	dir := t.TempDir()
	jsonPath, pcapPath = filepath.Join(dir, "v.jsonl"), filepath.Join(dir, "v.pcapng")
	w, err := Open(Config{JSONPath: jsonPath, PcapPath: pcapPath, SnapLen: fixtureSnapLen, Version: "test-1.0"})
	if err != nil {
		t.Fatal(err)
	}
	for i, vlan := range []vlanmark.Tag{{}, {TPID: vlanmark.TPID8021Q, ID: 10}, {}, {TPID: vlanmark.TPID8021AD, ID: 4094}} {
		from, to := client, device
		if vlan.ID == 4094 {
			from, to = client6, device6
		}
		pkt, seg := tcpPacket(t, from, to, segment.ACK, uint32(1000+i), 1, 100, 3)
		ev := &nfq.Event{Kind: nfq.EventVerdict, Arrived: t0, Left: t0.Add(time.Duration(i) * time.Millisecond), PacketID: uint32(i + 1),
			Decision: &nfq.Decision{}, Data: pkt, Seg: seg, TCP: true, VLAN: vlan}
		if vlan.Tagged() {
			ev.DstMAC, ev.SrcMAC = fixtureDstMAC, fixtureSrcMAC
		}
		w.Record(ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return jsonPath, pcapPath
}

// TestVLANInTheLogAndTheCapture: a tagged packet's record has "vlan", an
// untagged one's has none; in the pcapng the tagged ones are Ethernet
// frames with their 802.1Q tag on a second interface, described before
// the first of them, and the IP packet after the tag is the one logged.
func TestVLANInTheLogAndTheCapture(t *testing.T) {
	jsonPath, pcapPath := writeVLANEvents(t)
	var got []any
	for _, rec := range readJSONL(t, jsonPath) {
		if rec["kind"] == "verdict" {
			got = append(got, []any{rec["vlan"], rec["vlan_type"]})
		}
	}
	if diff := cmp.Diff([]any{[]any{nil, nil}, []any{10, nil}, []any{nil, nil}, []any{4094, "802.1ad"}}, got); diff != "" {
		t.Errorf("vlan fields (-want +got):\n%s", diff)
	}

	r := openMixedNg(t, pcapPath)
	type frame struct {
		Intf     int
		Dst, Src [6]byte
		TPID     uint16
		VLAN     uint16
		Type     uint16
		IPv      byte
	}
	var frames []frame
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fr := frame{Intf: ci.InterfaceIndex}
		if ci.InterfaceIndex == 1 {
			if len(data) < 19 {
				t.Fatalf("tagged frame % x", data)
			}
			fr.Dst, fr.Src = [6]byte(data[0:6]), [6]byte(data[6:12])
			fr.TPID, fr.VLAN, fr.Type, fr.IPv = binary.BigEndian.Uint16(data[12:]), binary.BigEndian.Uint16(data[14:]), binary.BigEndian.Uint16(data[16:]), data[18]>>4
			if ci.CaptureLength != len(data) || ci.Length != len(data) {
				t.Errorf("tagged frame: cap %d len %d, want %d both", ci.CaptureLength, ci.Length, len(data))
			}
		} else {
			fr.IPv = data[0] >> 4
		}
		frames = append(frames, fr)
	}
	d, sr := fixtureDstMAC, fixtureSrcMAC
	want := []frame{{IPv: 4}, {1, d, sr, 0x8100, 10, 0x0800, 4}, {IPv: 4}, {1, d, sr, 0x88a8, 4094, 0x86dd, 6}}
	if diff := cmp.Diff(want, frames); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if r.NInterfaces() != 2 {
		t.Fatalf("%d interfaces, want 2", r.NInterfaces())
	}
	if intf, _ := r.Interface(1); intf.Name != VLANInterfaceName || intf.LinkType != layers.LinkTypeEthernet || intf.SnapLength != fixtureSnapLen+vlanHeaderLen {
		t.Errorf("interface 1: %q %v snaplen %d", intf.Name, intf.LinkType, intf.SnapLength)
	}
}

// TestTsharkShowsTheVLAN: Wireshark reads the tag and the comment of
// every frame.
func TestTsharkShowsTheVLAN(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed; CI must install it (Debian package tshark)")
		}
		t.Skip("skipped: tshark not installed")
	}
	_, pcapPath := writeVLANEvents(t)
	cmd := exec.Command(tshark, "-r", pcapPath, "-T", "fields", "-e", "vlan.id", "-e", "ieee8021ad.id", "-e", "tcp.seq_raw", "-e", "frame.comment")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	t.Logf("tshark -T fields -e vlan.id -e ieee8021ad.id -e tcp.seq_raw -e frame.comment:\n%s", out)
	want := []string{
		"\t\t1000\tcloseduel verdict=accept action=pass rule=- conn=0 dir=- held=0s",
		"10\t\t1001\tcloseduel verdict=accept action=pass rule=- conn=0 dir=- held=1ms",
		"\t\t1002\tcloseduel verdict=accept action=pass rule=- conn=0 dir=- held=2ms",
		"\t4094\t1003\tcloseduel verdict=accept action=pass rule=- conn=0 dir=- held=3ms",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")); diff != "" {
		t.Errorf("tshark (-want +got):\n%s", diff)
	}
}

// TestVLANInterfaceSurvivesAFailedFlush: the batch holding the tagged
// interface's description fails to reach the disk (and is cut back); the
// next tagged packet must describe the interface again, or its frame
// would name an interface the file does not have.
func TestVLANInterfaceSurvivesAFailedFlush(t *testing.T) {
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "v.pcapng")
	var broken atomic.Bool
	w, err := Open(Config{PcapPath: pcapPath, Version: "test-1.0"},
		withOutputWrapper(func(name string, w io.Writer) io.Writer { return breakable{w: w, broken: &broken} }))
	if err != nil {
		t.Fatal(err)
	}
	tagged := func(i int) {
		ev := synEvent(t, i)
		ev.VLAN = vlanmark.Tag{TPID: vlanmark.TPID8021Q, ID: 20}
		w.Record(&ev)
	}
	broken.Store(true)
	tagged(1)
	waitFor(t, "the failed flush", func() bool { return w.Stats().Failed == 1 })
	broken.Store(false)
	tagged(2)
	if err := w.Close(); !errors.Is(err, errBroken) {
		t.Fatalf("Close: %v, want the first error", err)
	}
	r := openMixedNg(t, pcapPath)
	data, ci, err := r.ReadPacketData()
	if err != nil {
		t.Fatalf("the frame after the failed batch: %v", err)
	}
	if ci.InterfaceIndex != 1 || binary.BigEndian.Uint16(data[14:]) != 20 || binary.BigEndian.Uint32(data[18+20+4:]) != 2 {
		t.Errorf("frame on interface %d, % x; want packet 2 with VLAN 20 on interface 1", ci.InterfaceIndex, data[:min(len(data), 26)])
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after it: %v, want the end", err)
	}
}

// openMixedNg opens a pcapng whose interfaces have different link types
// (the raw IP one and the VLAN one) for reading until the test ends.
func openMixedNg(t *testing.T, path string) *pcapgo.NgReader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

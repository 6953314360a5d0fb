package nfq

import (
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/closeduel/closeduel/segment"
	"github.com/closeduel/closeduel/vlanmark"
)

// sink is where the carrier's work leaves it: verdicts for queued packets
// and Ethernet frames to send out of a bridge port. The Linux engine
// queues verdicts for its next netlink write and sends frames on a packet
// socket; tests use a fake that records them.
type sink interface {
	// queueVerdict queues the verdict of queued packet id; payload, when
	// not nil, replaces the packet's bytes.
	queueVerdict(id uint32, v Verdict, payload []byte)
	// sendFrame sends an Ethernet frame out of the bridge port with
	// ifindex port.
	sendFrame(f []byte, port uint32, dstMAC [6]byte) error
}

// slot keeps a copy of a packet that outlives its receive buffer: a held
// packet, or one to duplicate or inject later.
type slot struct {
	gen      uint32
	busy     bool
	kind     timedKind
	id       uint32
	arrived  time.Time
	verdict  Verdict
	modified bool
	holdKey  uint64
	token    uint64
	outPort  uint32
	seg      segment.Segment
	tcp      bool
	vlan     vlanmark.Tag
	decision Decision
	data     []byte
	inject   Inject
}

// host is what the engine learned about one address: the MAC it sends
// from, the bridge port it sits behind and the VLAN its frames carry.
type host struct {
	mac  [6]byte
	port uint32
	vlan vlanmark.Tag
}

// carrier carries out decisions: it decides each queued packet, gives its
// verdict or holds it in a slot, keeps the timed queue of held packets,
// copies and crafted segments, and tells the Decider when a held packet
// leaves. It does no I/O of its own: verdicts and frames go to its sink.
// Everything here runs on the engine's packet goroutine.
type carrier struct {
	cfg  Config
	sink sink

	dec    *segment.Decoder
	pkt    Packet
	dcs    Decision
	ev     Event
	frame  []byte
	logBuf []byte  // the logged copy of a packet whose Decision asks for another port
	after  []int32 // slots to send right after the next flush

	timed timedQueue
	slots []slot
	free  []int32

	hosts map[netip.Addr]host

	stats   Stats
	actions actionCounts
}

// initCarrier fills cfg's defaults and allocates every buffer the
// carrier uses, once.
func (c *carrier) initCarrier(cfg Config, s sink) error {
	cfg.fill()
	c.cfg, c.sink = cfg, s
	c.hosts = make(map[netip.Addr]host)
	var err error
	if c.dec, err = segment.NewDecoder(layers.LinkTypeRaw); err != nil {
		return err
	}
	c.frame = make([]byte, 0, maxFrame)
	c.slots = make([]slot, cfg.MaxHeld)
	c.free = make([]int32, 0, cfg.MaxHeld)
	for i := len(c.slots) - 1; i >= 0; i-- {
		c.free = append(c.free, int32(i))
	}
	c.timed.items = make([]timedItem, 0, cfg.MaxHeld)
	c.after = make([]int32, 0, 64)
	return nil
}

// maxFrame is the largest frame the carrier builds: a 64 KiB packet and
// its Ethernet header.
const maxFrame = 0x10000 + 64

// handle decides one queued packet and gives or schedules its verdict. In
// failOpen mode (draining) the packet is accepted unchanged without a
// decision.
func (c *carrier) handle(qp *queuedPacket, now time.Time, failOpen bool) {
	c.stats.Packets.Add(1)
	p := &c.pkt
	*p = Packet{ID: qp.ID, Time: now, Data: qp.Payload, InDev: qp.InDev, OutDev: qp.OutDev, PhysIn: qp.PhysIn, PhysOut: qp.PhysOut,
		ChecksumPartial: qp.SkbInfo&skbInfoCsumNotReady != 0}
	p.VLAN = vlanmark.Read(qp.Mark)
	if len(qp.HwAddr) == 6 {
		p.SrcMAC = net.HardwareAddr(qp.HwAddr)
	}
	origLen := 0
	if qp.CapLen > uint32(len(qp.Payload)) {
		origLen = int(qp.CapLen)
	}
	err := c.dec.Decode(qp.Payload, &p.Seg)
	p.TCP = err == nil
	if p.TCP {
		c.learn(p)
	}
	d := &c.dcs
	*d = Decision{}
	switch {
	case failOpen:
	case err == segment.ErrNotTCP:
		c.stats.NonTCP.Add(1)
	case err != nil:
		c.stats.Malformed.Add(1)
	default:
		c.decide(p, d)
		if origLen != 0 && (d.Modified || d.Duplicates > 0) {
			// A cut packet cannot be handed back rewritten nor copied:
			// the kernel would truncate it to the bytes we have.
			c.stats.CutNeedsWhole.Add(1)
			d.Modified, d.Rewrote, d.Duplicates = false, "", 0
		}
	}
	if origLen != 0 {
		c.stats.Cut.Add(1)
	}
	c.apply(p, d, origLen, now)
}

// decide calls the Decider, turning a panic into an unchanged accept.
func (c *carrier) decide(p *Packet, d *Decision) {
	defer func() {
		if r := recover(); r != nil {
			c.stats.DeciderPanic.Add(1)
			*d = Decision{Rule: "decider-panic"}
		}
	}()
	c.cfg.Decider.Decide(p, d)
}

// learn remembers the source MAC and bridge port of the packet's sender.
func (c *carrier) learn(p *Packet) {
	if len(p.SrcMAC) != 6 || p.PhysIn == 0 {
		return
	}
	a := p.Seg.Src.Addr()
	h, ok := c.hosts[a]
	if ok && h.port == p.PhysIn && [6]byte(p.SrcMAC) == h.mac && h.vlan == p.VLAN {
		return
	}
	c.hosts[a] = host{mac: [6]byte(p.SrcMAC), port: p.PhysIn, vlan: p.VLAN}
}

// apply carries out a decision for the current packet.
func (c *carrier) apply(p *Packet, d *Decision, origLen int, now time.Time) {
	// A rewrite kept the checksum as it was (RFC 1624); it is computed
	// anew only when a rule asks or the kernel had left it partial.
	if d.Modified && (d.RepairChecksums || p.ChecksumPartial) {
		if err := segment.FixChecksums(p.Data, &p.Seg); err != nil {
			d.Modified = false
			c.stats.Malformed.Add(1)
		}
	}
	for i := 0; i < d.NInjects; i++ {
		if d.Injects[i].Before {
			c.injectNow(&d.Injects[i], p, d, now)
		}
	}
	holding := d.HoldKey != 0 || d.Delay > 0
	if holding {
		if s := c.takeSlot(); s >= 0 {
			c.hold(s, p, d, now)
		} else {
			c.stats.HoldOverflow.Add(1)
			holding = false
		}
	}
	if !holding {
		c.verdict(p.ID, d.Verdict, d.Modified, p.Data, origLen, now, now, &p.Seg, p.TCP, p.VLAN, d)
		if d.Token != 0 && (d.HoldKey != 0 || d.Delay > 0) {
			c.left(d.Token, LeftOverflow, now)
		}
	}
	for i := 0; i < d.NReleases; i++ {
		c.releaseKey(d.Releases[i], now)
	}
	for i := 1; i <= d.Duplicates; i++ {
		if s := c.takeSlot(); s >= 0 {
			sl := &c.slots[s]
			c.fillSlot(sl, p, d, now)
			sl.kind = timedDuplicate
			sl.outPort = p.PhysOut
			if d.DupGap <= 0 {
				c.after = append(c.after, s)
			} else {
				c.timed.Push(timedItem{due: now.Add(time.Duration(i) * d.DupGap), kind: timedDuplicate, slot: s, gen: sl.gen})
			}
		} else {
			c.stats.SendFailed.Add(1)
		}
	}
	for i := 0; i < d.NInjects; i++ {
		if d.Injects[i].Before {
			continue
		}
		if s := c.takeSlot(); s >= 0 {
			sl := &c.slots[s]
			sl.kind = timedInject
			sl.inject = d.Injects[i]
			sl.decision = *d
			sl.arrived = now
			sl.id = p.ID
			c.after = append(c.after, s)
		} else {
			c.stats.SendFailed.Add(1)
		}
	}
}

func (c *carrier) takeSlot() int32 {
	if len(c.free) == 0 {
		return -1
	}
	s := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.slots[s].busy = true
	return s
}

func (c *carrier) freeSlot(s int32) {
	sl := &c.slots[s]
	sl.gen++
	sl.busy = false
	sl.holdKey, sl.token = 0, 0
	c.free = append(c.free, s)
}

// fillSlot copies the packet and decision into a slot.
func (c *carrier) fillSlot(sl *slot, p *Packet, d *Decision, now time.Time) {
	sl.id = p.ID
	sl.arrived = now
	sl.verdict = d.Verdict
	sl.modified = d.Modified
	sl.seg = p.Seg
	sl.tcp = p.TCP
	sl.vlan = p.VLAN
	sl.decision = *d
	sl.data = append(sl.data[:0], p.Data...)
}

// holdFor is how long the engine keeps a packet the decision holds: its
// Delay, at most MaxDelay; a HoldKey hold without a Delay waits MaxHold.
func (c *carrier) holdFor(d *Decision) time.Duration {
	wait := min(d.Delay, MaxDelay)
	if d.HoldKey != 0 && wait <= 0 {
		wait = c.cfg.MaxHold
	}
	return wait
}

// hold keeps the packet in the kernel queue and schedules its verdict.
func (c *carrier) hold(s int32, p *Packet, d *Decision, now time.Time) {
	sl := &c.slots[s]
	c.fillSlot(sl, p, d, now)
	sl.kind = timedRelease
	sl.holdKey = d.HoldKey
	sl.token = d.Token
	c.timed.Push(timedItem{due: now.Add(c.holdFor(d)), kind: timedRelease, slot: s, gen: sl.gen})
	c.stats.Held.Add(1)
}

// releaseKey gives their verdicts now to every packet held under key, in
// the order they were held.
func (c *carrier) releaseKey(key uint64, now time.Time) {
	// Held packets under one key are few; scanning the timed queue in
	// (due, seq) order would need a sort, so scan the slots by hold order.
	for {
		best := int32(-1)
		for i := range c.slots {
			sl := &c.slots[i]
			if sl.busy && sl.kind == timedRelease && sl.holdKey == key {
				if best < 0 || sl.arrived.Before(c.slots[best].arrived) {
					best = int32(i)
				}
			}
		}
		if best < 0 {
			return
		}
		c.release(best, LeftReleased, now)
	}
}

// release gives a held packet its verdict, frees its slot and tells the
// Decider.
func (c *carrier) release(s int32, how Leave, now time.Time) {
	sl := &c.slots[s]
	c.verdict(sl.id, sl.verdict, sl.modified, sl.data, 0, sl.arrived, now, &sl.seg, sl.tcp, sl.vlan, &sl.decision)
	c.stats.Released.Add(1)
	token := sl.token
	c.freeSlot(s)
	if token != 0 {
		c.left(token, how, now)
	}
}

// left tells the Decider that the held packet named token has left.
func (c *carrier) left(token uint64, how Leave, now time.Time) {
	if obs, ok := c.cfg.Decider.(HoldObserver); ok {
		obs.Left(token, how, now)
	}
}

// verdict hands the verdict to the sink and reports the event.
func (c *carrier) verdict(id uint32, v Verdict, modified bool, data []byte, origLen int, arrived, left time.Time, seg *segment.Segment, tcp bool, vlan vlanmark.Tag, d *Decision) {
	var payload []byte
	if modified && v == Accept {
		payload = data
		c.stats.Modified.Add(1)
	}
	if v == Drop {
		c.stats.Dropped.Add(1)
	} else {
		c.stats.Accepted.Add(1)
	}
	c.sink.queueVerdict(id, v, payload)
	c.actions.add(d.Action)
	if c.cfg.Recorder != nil {
		c.ev = Event{Kind: EventVerdict, Arrived: arrived, Left: left, PacketID: id, Verdict: v, Decision: d, Data: data, OrigLen: origLen, Seg: *seg, TCP: tcp, VLAN: vlan}
		if vlan.Tagged() && tcp {
			c.ev.DstMAC, c.ev.SrcMAC = c.hosts[seg.Dst.Addr()].mac, c.hosts[seg.Src.Addr()].mac
		}
		if d.LogDstPort != 0 && tcp {
			// The verdict message holds its own copy of the packet: log a
			// copy with the port the Decider asked for.
			c.logBuf = append(c.logBuf[:0], data...)
			if segment.SetDstPort(c.logBuf, &c.ev.Seg, d.LogDstPort) == nil && segment.FixChecksums(c.logBuf, &c.ev.Seg) == nil {
				c.ev.Data = c.logBuf
			} else {
				c.ev.Seg = *seg
			}
		}
		c.cfg.Recorder.Record(&c.ev)
	}
}

// fireDue carries out every timed item that is due at now.
func (c *carrier) fireDue(now time.Time) {
	for {
		it, ok := c.timed.Peek()
		if !ok || it.due.After(now) {
			return
		}
		c.timed.Pop()
		sl := &c.slots[it.slot]
		if !sl.busy || sl.gen != it.gen {
			continue // released early by key
		}
		switch it.kind {
		case timedRelease:
			c.release(it.slot, LeftDue, now)
		case timedDuplicate:
			c.sendDuplicate(sl, now)
			c.freeSlot(it.slot)
		case timedInject:
			c.injectNow(&sl.inject, nil, &sl.decision, now)
			c.freeSlot(it.slot)
		}
	}
}

// sendAfter sends the copies and crafted segments that must follow the
// verdicts just flushed.
func (c *carrier) sendAfter(now time.Time) {
	for _, s := range c.after {
		sl := &c.slots[s]
		switch sl.kind {
		case timedDuplicate:
			c.sendDuplicate(sl, now)
		case timedInject:
			c.injectNow(&sl.inject, nil, &sl.decision, now)
		}
		c.freeSlot(s)
	}
	c.after = c.after[:0]
}

// releaseAll gives every held packet its verdict (at shutdown) and drops
// pending copies and injections.
func (c *carrier) releaseAll(now time.Time) {
	for c.timed.Len() > 0 {
		it := c.timed.Pop()
		sl := &c.slots[it.slot]
		if !sl.busy || sl.gen != it.gen {
			continue
		}
		switch it.kind {
		case timedRelease:
			c.release(it.slot, LeftShutdown, now)
		default:
			c.freeSlot(it.slot) // pending copies and injections are not sent after shutdown
		}
	}
}

// heldNow returns how many packets are held.
func (c *carrier) heldNow() int {
	n := 0
	for i := range c.slots {
		if c.slots[i].busy && c.slots[i].kind == timedRelease {
			n++
		}
	}
	return n
}

// sendDuplicate sends a copy of the slot's packet out of the port it was
// leaving by (or the one its destination was learned on).
func (c *carrier) sendDuplicate(sl *slot, now time.Time) {
	dst, okDst := c.hosts[sl.seg.Dst.Addr()]
	src, okSrc := c.hosts[sl.seg.Src.Addr()]
	port := sl.outPort
	if okDst && port == 0 {
		port = dst.port
	}
	if !okDst || !okSrc || port == 0 {
		c.stats.SendFailed.Add(1)
		return
	}
	etherType := uint16(0x0800)
	if sl.seg.IsIPv6() {
		etherType = 0x86dd
	}
	f := append(sl.vlan.AppendEthernet(c.frame[:0], dst.mac, src.mac, etherType), sl.data...)
	c.frame = f
	if err := c.sink.sendFrame(f, port, dst.mac); err != nil {
		c.stats.SendFailed.Add(1)
		return
	}
	c.stats.Duplicated.Add(1)
	if c.cfg.Recorder != nil {
		c.ev = Event{Kind: EventDuplicate, Arrived: sl.arrived, Left: now, PacketID: sl.id, Verdict: Accept, Decision: &sl.decision, Data: sl.data, Seg: sl.seg, TCP: sl.tcp, VLAN: sl.vlan}
		if sl.vlan.Tagged() {
			c.ev.DstMAC, c.ev.SrcMAC = dst.mac, src.mac
		}
		c.cfg.Recorder.Record(&c.ev)
	}
}

// injectNow crafts a segment and sends it toward its destination.
func (c *carrier) injectNow(in *Inject, p *Packet, d *Decision, now time.Time) {
	t := &in.Template
	dst, okDst := c.hosts[t.Tuple.Dst.Addr()]
	src, okSrc := c.hosts[t.Tuple.Src.Addr()]
	if !okDst || !okSrc {
		c.stats.SendFailed.Add(1)
		return
	}
	f, err := segment.Build(c.frame[:0], src.mac[:], dst.mac[:], t)
	if err != nil {
		c.stats.SendFailed.Add(1)
		return
	}
	if dst.vlan.Tagged() {
		// The destination's frames carry a tag: so does this one.
		f = append(f, 0, 0, 0, 0)
		copy(f[16:], f[12:])
		dst.vlan.AppendTo(f[:12])
	}
	c.frame = f
	if err := c.sink.sendFrame(f, dst.port, dst.mac); err != nil {
		c.stats.SendFailed.Add(1)
		return
	}
	c.stats.Injected.Add(1)
	ip := f[segment.EthernetHeaderLen:]
	if dst.vlan.Tagged() {
		ip = f[segment.EthernetHeaderLen+4:]
	}
	var seg segment.Segment
	tcp := c.dec.Decode(ip, &seg) == nil
	if obs, ok := c.cfg.Decider.(InjectObserver); ok && tcp {
		obs.Injected(&seg, now)
	}
	if c.cfg.Recorder != nil {
		id, arrived := uint32(0), now
		if p != nil {
			id, arrived = p.ID, p.Time
		}
		c.ev = Event{Kind: EventInjected, Arrived: arrived, Left: now, PacketID: id, Verdict: Accept, Decision: d, Data: ip, Seg: seg, TCP: tcp, VLAN: dst.vlan}
		if dst.vlan.Tagged() {
			c.ev.DstMAC, c.ev.SrcMAC = dst.mac, src.mac
		}
		c.cfg.Recorder.Record(&c.ev)
	}
}

package smpp

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
	"github.com/hermod-sms/hermod/channels/sms"
)

// ack answers one deliver_sm or data_sm on the connection it came on. If
// that connection is gone, nothing is sent and the SMSC delivers again.
type ack struct {
	cn  *conn
	req *pdu.PDU
}

func (a ack) send(status uint32) {
	select {
	case <-a.cn.closed:
		return
	default:
	}
	if err := a.cn.write(a.req.Response(status)); err != nil {
		a.cn.s.c.log.Warn("smpp: could not answer the SMSC", "bind", a.cn.s.n, "pdu", pdu.CommandName(a.req.Command), "err", err)
	}
}

// inboundItem is a report or an incoming message waiting to be committed,
// with the PDUs to acknowledge once it is.
type inboundItem struct {
	report   channels.Report
	incoming channels.Incoming
	acks     []ack
}

// inbound handles a deliver_sm or data_sm: a delivery receipt goes to the
// report committer, a message to the reassembler or the incoming
// committer. Nothing is acknowledged here.
func (c *Channel) inbound(cn *conn, p *pdu.PDU) {
	a := ack{cn: cn, req: p}
	if r, ok := receiptFromPDU(p); ok {
		if !r.final() {
			a.send(pdu.StatusOK) // ENROUTE, ACCEPTD: nothing to record
			return
		}
		format := c.set.ReportIDFormat
		if r.IDFromTLV {
			format = c.set.ResponseIDFormat // receipted_message_id repeats the submit_sm_resp id
		}
		rep := channels.Report{
			Reference: c.ids.normalize(r.ID, format),
			Delivered: r.delivered(),
			State:     r.Stat,
			DoneTime:  r.Done,
		}
		if !rep.Delivered {
			rep.ErrorCode = r.Err
		}
		if rep.State == "" {
			rep.State = "UNKNOWN"
		}
		c.enqueue(c.reports, inboundItem{report: rep, acks: []ack{a}}, "delivery report")
		return
	}
	if p.ESMClass&pdu.ESMTypeMask != 0 {
		// an SME acknowledgement or another notification that is not a
		// message: nothing to store
		c.log.Info("smpp: ignoring a notification that is neither a message nor a delivery receipt", "bind", cn.s.n, "pdu", p.String())
		a.send(pdu.StatusOK)
		return
	}
	c.asm.add(a, p)
}

// enqueue hands an item to its committer without waiting. The read loop
// that calls it also carries the submit_sm_resp of every message in
// flight: if it waited for a database that is slow or down, responses
// would sit unread until they time out, and those messages would be sent
// again. So when the queue is full (the database is that far behind), the
// item's PDUs are answered ESME_RX_T_APPN at once and the SMSC delivers
// them again later; nothing is lost and nothing is acknowledged before it
// is committed.
//
// An item one of whose connections has closed is not committed either:
// the SMSC delivers that PDU again, and the others are answered
// ESME_RX_T_APPN so that they come again with it.
func (c *Channel) enqueue(q chan inboundItem, it inboundItem, what string) {
	for _, a := range it.acks {
		select {
		case <-a.cn.closed:
			for _, b := range it.acks {
				b.send(pdu.StatusRxTAppN) // a no-op on the closed one
			}
			return
		default:
		}
	}
	select {
	case q <- it:
		return
	default:
	}
	c.stats.deferred.Add(int64(len(it.acks)))
	for _, a := range it.acks {
		a.send(pdu.StatusRxTAppN)
	}
	now := time.Now().UnixNano()
	if last := c.deferLogged.Load(); now-last > int64(10*time.Second) && c.deferLogged.CompareAndSwap(last, now) {
		c.log.Warn("smpp: the database is behind: answering ESME_RX_T_APPN so that the SMSC delivers again later",
			"what", what, "queued", len(q), "deferredSoFar", c.stats.deferred.Load())
	}
}

// inboundLoop commits items in batches: it takes what is queued (up to
// 2000), commits it with one Host call, then acknowledges every PDU
// of the batch. On error the PDUs are answered ESME_RX_T_APPN so that the
// SMSC delivers them again.
func (c *Channel) inboundLoop(ctx context.Context, q chan inboundItem, commit func(context.Context, []inboundItem) error) {
	const maxBatch = 2000
	for {
		var batch []inboundItem
		select {
		case <-ctx.Done():
			return
		case it := <-q:
			batch = append(batch, it)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case it := <-q:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		status := pdu.StatusOK
		if err := commit(ctx, batch); err != nil {
			status = pdu.StatusRxTAppN
			c.log.Error("smpp: could not store what the SMSC delivered: answering ESME_RX_T_APPN so it is delivered again", "items", len(batch), "err", err)
		}
		for _, it := range batch {
			for _, a := range it.acks {
				a.send(status)
			}
		}
	}
}

func (c *Channel) commitReports(ctx context.Context, batch []inboundItem) error {
	reps := make([]channels.Report, len(batch))
	for i, it := range batch {
		reps[i] = it.report
	}
	if err := c.host.Report(ctx, reps); err != nil {
		return fmt.Errorf("store %d delivery reports: %w", len(reps), err)
	}
	c.stats.reports.Add(int64(len(reps)))
	return nil
}

func (c *Channel) commitIncoming(ctx context.Context, batch []inboundItem) error {
	ins := make([]channels.Incoming, len(batch))
	for i, it := range batch {
		ins[i] = it.incoming
	}
	if err := c.host.Receive(ctx, ins); err != nil {
		return fmt.Errorf("store %d incoming messages: %w", len(ins), err)
	}
	c.stats.incoming.Add(int64(len(ins)))
	return nil
}

// piece is one part of an incoming message.
type piece struct {
	num  int
	data []byte // user data without UDH
	dc   byte
	a    ack
}

type group struct {
	key    string
	total  int
	first  *pdu.PDU
	pieces map[int]piece
	timer  *time.Timer
}

// reassembler holds the parts of incoming long messages, unacknowledged,
// until all have come (or reassemblyTimeout passed).
type reassembler struct {
	c      *Channel
	mu     sync.Mutex
	groups map[string]*group
}

func newReassembler(c *Channel) *reassembler {
	return &reassembler{c: c, groups: map[string]*group{}}
}

// concatInfo finds how p is tied to other parts: SAR TLVs or a UDH
// concatenation element.
func concatInfo(p *pdu.PDU) (data []byte, ref, total, num int, ok bool, err error) {
	data = p.ShortMessage
	if len(data) == 0 {
		data, _ = p.TLV(pdu.TagMessagePayload)
	}
	if p.ESMClass&pdu.ESMUDHI != 0 {
		h, rest, perr := sms.ParseUDH(data)
		if perr != nil {
			return data, 0, 0, 0, false, fmt.Errorf("user data header: %w", perr)
		}
		data = rest
		if cc, found := h.Concat(); found && cc.Total > 1 {
			return data, int(cc.Reference), cc.Total, cc.Number, true, nil
		}
	}
	r, okR := p.TLV(pdu.TagSarMsgRefNum)
	t, okT := p.TLV(pdu.TagSarTotalSegments)
	n, okN := p.TLV(pdu.TagSarSegmentSeqnum)
	if okR && okT && okN && len(r) == 2 && len(t) == 1 && len(n) == 1 && t[0] > 1 && n[0] >= 1 && n[0] <= t[0] {
		return data, int(binary.BigEndian.Uint16(r)), int(t[0]), int(n[0]), true, nil
	}
	return data, 0, 0, 0, false, nil
}

func (r *reassembler) add(a ack, p *pdu.PDU) {
	c := r.c
	data, ref, total, num, multi, err := concatInfo(p)
	if err != nil {
		c.log.Warn("smpp: incoming message has a malformed header: storing it as it is", "bind", a.cn.s.n, "err", err, "pdu", p.String())
	}
	if !multi {
		c.enqueue(c.incoming, inboundItem{incoming: c.makeIncoming(p, []piece{{num: 1, data: data, dc: p.DataCoding}}, 1), acks: []ack{a}}, "incoming message")
		return
	}
	key := fmt.Sprintf("%d/%d/%s|%d/%d/%s|%d|%d", p.SourceTON, p.SourceNPI, p.Source, p.DestTON, p.DestNPI, p.Dest, ref, total)
	r.mu.Lock()
	g, ok := r.groups[key]
	if !ok {
		g = &group{key: key, total: total, first: p, pieces: map[int]piece{}}
		g.timer = time.AfterFunc(time.Duration(c.set.ReassemblyTimeout), func() { r.flush(key, true) })
		r.groups[key] = g
	}
	// A part delivered again (after a reconnect) replaces the old one,
	// whose acknowledgement can no longer be sent anyway.
	g.pieces[num] = piece{num: num, data: data, dc: p.DataCoding, a: a}
	complete := len(g.pieces) == g.total
	r.mu.Unlock()
	if complete {
		r.flush(key, false)
	}
}

// flush hands a group to the committer, complete or (timeout) not.
func (r *reassembler) flush(key string, timedOut bool) {
	r.mu.Lock()
	g, ok := r.groups[key]
	if ok {
		delete(r.groups, key)
		g.timer.Stop()
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	pieces := make([]piece, 0, len(g.pieces))
	for _, pc := range g.pieces {
		pieces = append(pieces, pc)
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].num < pieces[j].num })
	if timedOut {
		r.c.log.Warn("smpp: incoming long message incomplete after reassemblyTimeout: storing the parts received",
			"from", g.first.Source, "parts", len(pieces), "total", g.total)
	}
	acks := make([]ack, len(pieces))
	for i, pc := range pieces {
		acks[i] = pc.a
	}
	in := r.c.makeIncoming(g.first, pieces, g.total)
	r.c.enqueue(r.c.incoming, inboundItem{incoming: in, acks: acks}, "incoming message")
}

func (r *reassembler) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, g := range r.groups {
		g.timer.Stop()
		delete(r.groups, k)
	}
}

// makeIncoming decodes the parts' joined user data (so an escape or a
// surrogate pair cut between parts still reads right).
func (c *Channel) makeIncoming(p *pdu.PDU, pieces []piece, total int) channels.Incoming {
	var data []byte
	for _, pc := range pieces {
		data = append(data, pc.data...)
	}
	from := p.Source
	if p.SourceTON == 1 && from != "" && !strings.HasPrefix(from, "+") {
		from = "+" + from
	}
	to := p.Dest
	if p.DestTON == 1 && to != "" && !strings.HasPrefix(to, "+") {
		to = "+" + to
	}
	return channels.Incoming{
		From: from, FromTON: int(p.SourceTON), FromNPI: int(p.SourceNPI), To: to,
		Body: c.decodeBody(p.DataCoding, data), DataCoding: int(p.DataCoding),
		TotalParts: total, ReceivedTime: time.Now(),
	}
}

// decodeBody decodes user data by data_coding. Binary data is stored as
// hex; an alphabet Hermod does not know is read as Latin-1 so that nothing
// is lost.
func (c *Channel) decodeBody(dc byte, data []byte) string {
	enc, err := sms.EncodingOf(dc)
	if err == nil {
		if s, derr := enc.Decode(data); derr == nil {
			return s
		} else {
			err = derr
		}
	}
	if errors.Is(err, sms.ErrBinaryData) {
		return hex.EncodeToString(data)
	}
	c.log.Warn("smpp: incoming text could not be decoded: stored as Latin-1", "dataCoding", dc, "err", err)
	s, _ := sms.Latin1.Decode(data)
	return s
}

// Package smsctest is a scriptable SMPP 3.4 SMSC for tests. It listens on
// loopback, accepts binds, answers submit_sm with message ids, sends
// delivery receipts (after or before the submit_sm_resp), and can be told
// per test to throttle, fail, answer slowly or not at all, drop
// connections, refuse binds, deliver multipart messages and send malformed
// PDUs. It records every submit_sm so a test can count losses and
// duplicates.
package smsctest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// ReceiptMode says when the SMSC sends delivery receipts.
type ReceiptMode int

const (
	// ReceiptsAfter sends a receipt right after the submit_sm_resp when
	// the submit asked for one (registered_delivery). The default.
	ReceiptsAfter ReceiptMode = iota
	// ReceiptsBefore sends the receipt before the submit_sm_resp.
	ReceiptsBefore
	// ReceiptsOff sends none.
	ReceiptsOff
)

// Config sets up a Server. The zero value is a well-behaved SMSC.
type Config struct {
	// IDFormat is "hex" (default: upper case) or "decimal": how message
	// ids are written in submit_sm_resp.
	IDFormat string
	// ReceiptIDFormat is how the id is written in receipt text; default
	// IDFormat.
	ReceiptIDFormat string
	// IDPad pads ids with leading zeros to this width.
	IDPad int
	// Receipts says when receipts are sent.
	Receipts ReceiptMode
	// ReceiptTLVs adds receipted_message_id and message_state to receipts.
	ReceiptTLVs bool
	// ReceiptDelay, with ReceiptsAfter, sends each receipt this long
	// after its submit_sm_resp (a real network takes seconds); 0 sends it
	// at once.
	ReceiptDelay time.Duration
	// Redeliver is how long the SMSC waits before resending a deliver_sm
	// that got no response or an error (default 2s).
	Redeliver time.Duration
	// TLS, when set, makes the SMSC accept TLS connections only.
	TLS *tls.Config
	// Logf, when set, gets a line per notable event.
	Logf func(format string, args ...any)
}

// Submit is one submit_sm the SMSC received.
type Submit struct {
	Session   int
	PDU       pdu.PDU
	MessageID string // empty unless answered ESME_ROK
	Status    uint32
	Time      time.Time
}

// Answer is how the SMSC answers one submit_sm.
type Answer struct {
	Status     uint32        // command_status of the submit_sm_resp
	Delay      time.Duration // wait this long before answering
	Drop       bool          // never answer
	Disconnect bool          // close the connection instead of answering
	Stat       string        // receipt stat (default DELIVRD)
	Err        string        // receipt err (default 000)
	NoReceipt  bool
}

// Server is a running test SMSC.
type Server struct {
	cfg Config
	ln  net.Listener

	mu          sync.Mutex
	sessions    map[int]*session
	nextSession int
	submits     []*Submit // pointers: appending to a long run's record copies 8 bytes per submit, not the PDU
	refuseUntil time.Time
	refuseWith  uint32
	throttleTil time.Time
	onSubmit    func(p *pdu.PDU) Answer
	silent      bool // do not answer enquire_link
	pending     []*pdu.PDU
	ackedClosed map[uint32]int
	binds       int
	nextID      uint64
	seq         atomic.Uint32
	closed      bool
	wg          sync.WaitGroup
}

// Start starts an SMSC on 127.0.0.1 with a free port.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smsctest: listen on loopback: %w", err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	if cfg.IDFormat == "" {
		cfg.IDFormat = "hex"
	}
	if cfg.ReceiptIDFormat == "" {
		cfg.ReceiptIDFormat = cfg.IDFormat
	}
	if cfg.Redeliver == 0 {
		cfg.Redeliver = 2 * time.Second
	}
	s := &Server{cfg: cfg, ln: ln, sessions: map[int]*session{}, nextID: 0x10000}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Host is the listening address's host.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	s.DisconnectAll()
	s.wg.Wait()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// RefuseBinds answers binds with status for d (ESME_RBINDFAIL when 0).
func (s *Server) RefuseBinds(status uint32, d time.Duration) {
	if status == 0 {
		status = pdu.StatusBindFail
	}
	s.mu.Lock()
	s.refuseWith, s.refuseUntil = status, time.Now().Add(d)
	s.mu.Unlock()
}

// Throttle answers every submit_sm with ESME_RTHROTTLED for d.
func (s *Server) Throttle(d time.Duration) {
	s.mu.Lock()
	s.throttleTil = time.Now().Add(d)
	s.mu.Unlock()
}

// OnSubmit sets a function deciding how each submit_sm is answered; nil
// restores the default (ESME_ROK at once).
func (s *Server) OnSubmit(f func(p *pdu.PDU) Answer) {
	s.mu.Lock()
	s.onSubmit = f
	s.mu.Unlock()
}

// SilenceEnquireLink stops (or resumes) answering enquire_link, the way a
// half-open connection looks from the client.
func (s *Server) SilenceEnquireLink(on bool) {
	s.mu.Lock()
	s.silent = on
	s.mu.Unlock()
}

// DisconnectAll closes every connection abruptly, without unbind.
func (s *Server) DisconnectAll() {
	s.mu.Lock()
	var list []*session
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.conn.Close()
	}
}

// Submits returns a copy of every submit_sm received so far.
func (s *Server) Submits() []Submit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Submit, len(s.submits))
	for i, sub := range s.submits {
		out[i] = *sub
	}
	return out
}

// SubmitCount is len(Submits()) without the copy, for loops that poll.
func (s *Server) SubmitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.submits)
}

// Binds is the number of successful binds so far.
func (s *Server) Binds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.binds
}

// Bound is the number of sessions bound now.
func (s *Server) Bound() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.sessions {
		if ss.bound.Load() {
			n++
		}
	}
	return n
}

// PendingDeliveries is the number of deliver_sm not yet acknowledged with
// ESME_ROK (queued or in flight).
func (s *Server) PendingDeliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pending)
	for _, ss := range s.sessions {
		ss.mu.Lock()
		n += len(ss.inflight)
		ss.mu.Unlock()
	}
	return n
}

// Deliver queues a deliver_sm (or data_sm) for the first session that can
// receive. It is resent until a session answers it with ESME_ROK.
func (s *Server) Deliver(p *pdu.PDU) {
	if p.Command == 0 {
		p.Command = pdu.DeliverSM
	}
	s.mu.Lock()
	s.pending = append(s.pending, p)
	s.mu.Unlock()
	s.pump()
}

// Receipt queues a delivery receipt for id with stat and err, whether or
// not the id was ever issued.
func (s *Server) Receipt(id, stat, errCode string) {
	s.Deliver(s.receipt(id, stat, errCode, nil))
}

// Acked returns how many deliver_sm were answered with each status.
func (s *Server) Acked() map[uint32]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint32]int{}
	for _, ss := range s.sessions {
		ss.mu.Lock()
		for k, v := range ss.acked {
			out[k] += v
		}
		ss.mu.Unlock()
	}
	for k, v := range s.ackedClosed {
		out[k] += v
	}
	return out
}

// SendRaw writes raw bytes to every bound session (for malformed PDUs).
func (s *Server) SendRaw(b []byte) {
	s.mu.Lock()
	var list []*session
	for _, ss := range s.sessions {
		if ss.bound.Load() {
			list = append(list, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.writeRaw(b)
	}
}

// Seq returns a fresh sequence number for PDUs the test builds.
func (s *Server) Seq() uint32 { return s.seq.Add(1) }

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.nextSession++
		ss := &session{srv: s, id: s.nextSession, conn: c, w: bufio.NewWriter(c), inflight: map[uint32]*pdu.PDU{}, acked: map[uint32]int{}}
		s.sessions[ss.id] = ss
		s.mu.Unlock()
		s.wg.Add(1)
		go ss.serve()
	}
}

type session struct {
	srv     *Server
	id      int
	conn    net.Conn
	bound   atomic.Bool
	receive atomic.Bool // may get deliver_sm

	wmu sync.Mutex
	w   *bufio.Writer

	mu       sync.Mutex
	inflight map[uint32]*pdu.PDU // deliver_sm sent, no resp yet
	acked    map[uint32]int
}

func (ss *session) write(p *pdu.PDU) error {
	b, err := pdu.Encode(p)
	if err != nil {
		return err
	}
	return ss.writeRaw(b)
}

// writeRaw writes b. A failed write closes the connection, as an SMSC
// does: the buffered writer keeps its error, so the session could never
// write again and would only look alive.
func (ss *session) writeRaw(b []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := ss.w.Write(b)
	if err == nil {
		err = ss.w.Flush()
	}
	if err != nil {
		ss.srv.logf("session %d: write: %v: closing the connection", ss.id, err)
		ss.conn.Close()
	}
	return err
}

func (ss *session) serve() {
	s := ss.srv
	defer s.wg.Done()
	defer func() {
		ss.conn.Close()
		s.mu.Lock()
		delete(s.sessions, ss.id)
		ss.mu.Lock()
		for _, p := range ss.inflight { // unanswered deliveries go back to the queue
			s.pending = append(s.pending, p)
		}
		ss.inflight = map[uint32]*pdu.PDU{}
		if s.ackedClosed == nil {
			s.ackedClosed = map[uint32]int{}
		}
		for k, v := range ss.acked {
			s.ackedClosed[k] += v
		}
		ss.acked = map[uint32]int{}
		ss.mu.Unlock()
		s.mu.Unlock()
	}()
	r := bufio.NewReader(ss.conn)
	for {
		frame, err := pdu.ReadFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logf("session %d: read: %v", ss.id, err)
			}
			return
		}
		p, err := pdu.Decode(frame)
		if err != nil {
			s.logf("session %d: %v", ss.id, err)
			if cmd, _, seq, ok := pdu.Header(frame); ok && !pdu.IsResponse(cmd) {
				ss.write(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.StatusInvCmdLen, Seq: seq})
			}
			continue
		}
		if !ss.handle(p) {
			return
		}
	}
}

func (ss *session) handle(p *pdu.PDU) bool {
	s := ss.srv
	switch p.Command {
	case pdu.BindTransceiver, pdu.BindTransmitter, pdu.BindReceiver:
		s.mu.Lock()
		refuse := time.Now().Before(s.refuseUntil)
		status := s.refuseWith
		if !refuse {
			s.binds++
		}
		s.mu.Unlock()
		resp := p.Response(0)
		resp.SystemID = "smsctest"
		if refuse {
			resp.Status = status
			ss.write(resp)
			s.logf("session %d: bind refused", ss.id)
			return false
		}
		ss.write(resp)
		ss.bound.Store(true)
		ss.receive.Store(p.Command != pdu.BindTransmitter)
		s.pump()
	case pdu.EnquireLink:
		s.mu.Lock()
		silent := s.silent
		s.mu.Unlock()
		if !silent {
			ss.write(p.Response(0))
		}
	case pdu.Unbind:
		ss.write(p.Response(0))
		return false
	case pdu.SubmitSM:
		ss.submit(p)
	case pdu.DeliverSMResp, pdu.DataSMResp:
		ss.mu.Lock()
		d, ok := ss.inflight[p.Seq]
		delete(ss.inflight, p.Seq)
		ss.acked[p.Status]++
		ss.mu.Unlock()
		if ok && p.Status != 0 {
			time.AfterFunc(s.cfg.Redeliver, func() { s.Deliver(d) })
		}
	case pdu.EnquireLinkResp, pdu.UnbindResp, pdu.GenericNack:
	default:
		if !pdu.IsResponse(p.Command) {
			ss.write(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.StatusInvCmdID, Seq: p.Seq})
		}
	}
	return true
}

func (ss *session) submit(p *pdu.PDU) {
	s := ss.srv
	s.mu.Lock()
	var a Answer
	if s.onSubmit != nil {
		f := s.onSubmit
		s.mu.Unlock()
		a = f(p)
		s.mu.Lock()
	}
	if a.Status == 0 && time.Now().Before(s.throttleTil) {
		a.Status = pdu.StatusThrottled
	}
	if !ss.bound.Load() {
		a.Status = pdu.StatusInvBndSts
	}
	rec := Submit{Session: ss.id, PDU: *p, Status: a.Status, Time: time.Now()}
	if a.Status == 0 {
		s.nextID++
		rec.MessageID = formatID(s.nextID, s.cfg.IDFormat, s.cfg.IDPad)
	}
	id := s.nextID
	s.submits = append(s.submits, &rec)
	s.mu.Unlock()

	if a.Disconnect {
		ss.conn.Close()
		return
	}
	if a.Drop {
		return
	}
	resp := p.Response(a.Status)
	resp.MessageID = rec.MessageID
	var receipt *pdu.PDU
	if a.Status == 0 && p.RegisteredDelivery&0x03 != 0 && !a.NoReceipt && s.cfg.Receipts != ReceiptsOff {
		stat, errc := a.Stat, a.Err
		if stat == "" {
			stat = "DELIVRD"
		}
		if errc == "" {
			errc = "000"
		}
		receipt = s.receipt(formatID(id, s.cfg.ReceiptIDFormat, s.cfg.IDPad), stat, errc, p)
		if s.cfg.ReceiptTLVs {
			receipt.SetTLV(pdu.TagReceiptedMessageID, append([]byte(rec.MessageID), 0))
		}
	}
	answer := func() {
		if receipt != nil && s.cfg.Receipts == ReceiptsBefore {
			s.Deliver(receipt)
		}
		ss.write(resp)
		if receipt != nil && s.cfg.Receipts == ReceiptsAfter {
			if s.cfg.ReceiptDelay > 0 {
				time.AfterFunc(s.cfg.ReceiptDelay, func() { s.Deliver(receipt) })
			} else {
				s.Deliver(receipt)
			}
		}
	}
	if a.Delay > 0 {
		time.AfterFunc(a.Delay, answer)
		return
	}
	answer()
}

func formatID(n uint64, format string, pad int) string {
	var s string
	if format == "decimal" {
		s = strconv.FormatUint(n, 10)
	} else {
		s = strings.ToUpper(strconv.FormatUint(n, 16))
	}
	for len(s) < pad {
		s = "0" + s
	}
	return s
}

var messageStates = map[string]byte{"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}

// receipt builds a receipt deliver_sm for id; sub is the submit it answers
// (nil for a receipt out of nowhere).
func (s *Server) receipt(id, stat, errCode string, sub *pdu.PDU) *pdu.PDU {
	now := time.Now().Format("0601021504")
	dlvrd := "000"
	if stat == "DELIVRD" {
		dlvrd = "001"
	}
	text := fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:", id, dlvrd, now, now, stat, errCode)
	p := &pdu.PDU{Command: pdu.DeliverSM, ESMClass: pdu.ESMDeliveryReceipt, ShortMessage: []byte(text)}
	if sub != nil {
		p.Source, p.SourceTON, p.SourceNPI = sub.Dest, sub.DestTON, sub.DestNPI
		p.Dest, p.DestTON, p.DestNPI = sub.Source, sub.SourceTON, sub.SourceNPI
	}
	if s.cfg.ReceiptTLVs {
		p.SetTLV(pdu.TagReceiptedMessageID, append([]byte(id), 0))
		p.SetTLV(pdu.TagMessageState, []byte{messageStates[stat]})
	}
	return p
}

// pump hands queued deliveries to sessions that can receive them.
func (s *Server) pump() {
	s.mu.Lock()
	var target *session
	for _, ss := range s.sessions {
		if ss.bound.Load() && ss.receive.Load() {
			target = ss
			break
		}
	}
	if target == nil || len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	list := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, p := range list {
		q := *p
		q.Seq = s.seq.Add(1)
		target.mu.Lock()
		target.inflight[q.Seq] = p
		target.mu.Unlock()
		if err := target.write(&q); err != nil {
			s.logf("session %d: deliver: %v", target.id, err)
		}
	}
}

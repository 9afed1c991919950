package smpp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// errConnLost is the outcome of a request whose connection closed before
// its response came.
var errConnLost = errors.New("connection lost before the response")

// errNotWritten is the outcome of a request for a connection that had
// already closed: it never left Hermod.
var errNotWritten = errors.New("connection closed before the request was written")

// errTimeout is the outcome of a request without response in time.
var errTimeout = errors.New("no response in time")

// request is a PDU awaiting its response. done is called exactly once.
type request struct {
	cmd   uint32
	done  func(resp *pdu.PDU, err error)
	timer *time.Timer
}

// conn is one TCP (or TLS) connection of a session.
type conn struct {
	s       *session
	nc      net.Conn
	wmu     sync.Mutex
	w       *bufio.Writer
	writers atomic.Int32 // writes waiting for or holding wmu; the last one flushes
	closed  chan struct{}
	once    sync.Once

	mu      sync.Mutex
	pending map[uint32]*request
	seq     uint32
	dead    bool
}

func (cn *conn) close() {
	cn.once.Do(func() {
		cn.s.mu.Lock()
		if cn.s.cur == cn {
			cn.s.cur, cn.s.waiting = nil, 0
		}
		cn.s.mu.Unlock()
		cn.nc.Close()
		close(cn.closed)
		cn.mu.Lock()
		cn.dead = true
		pending := cn.pending
		cn.pending = nil
		cn.mu.Unlock()
		for _, r := range pending {
			r.timer.Stop()
			r.done(nil, errConnLost)
		}
	})
}

// write encodes and writes p. Writes are serialized; a failed write closes
// the connection. Concurrent writes share one flush (one system call):
// a writer that sees another one waiting leaves its PDU in the buffer for
// that one to flush, so under load submits and acknowledgements go out
// together, and an idle connection still flushes every PDU at once.
func (cn *conn) write(p *pdu.PDU) error {
	b, err := pdu.Encode(p)
	if err != nil {
		return err
	}
	cn.s.c.logPDU(cn.s, "out", p)
	cn.writers.Add(1)
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.nc.SetWriteDeadline(time.Now().Add(time.Duration(cn.s.c.set.ResponseTimeout)))
	_, err = cn.w.Write(b)
	if cn.writers.Add(-1) == 0 && err == nil {
		err = cn.w.Flush()
	}
	if err != nil {
		go cn.close()
		return fmt.Errorf("write %s: %w", pdu.CommandName(p.Command), err)
	}
	return nil
}

// send writes request p with the next sequence number and calls done with
// its response, a timeout or the loss of the connection.
func (cn *conn) send(p *pdu.PDU, timeout time.Duration, done func(*pdu.PDU, error)) {
	cn.mu.Lock()
	if cn.dead {
		cn.mu.Unlock()
		done(nil, errNotWritten)
		return
	}
	cn.seq++
	if cn.seq > 0x7FFFFFFF {
		cn.seq = 1
	}
	seq := cn.seq
	p.Seq = seq
	r := &request{cmd: p.Command, done: done}
	r.timer = time.AfterFunc(timeout, func() {
		cn.mu.Lock()
		_, ok := cn.pending[seq]
		delete(cn.pending, seq)
		cn.mu.Unlock()
		if ok {
			done(nil, errTimeout)
		}
	})
	cn.pending[seq] = r
	cn.mu.Unlock()
	if err := cn.write(p); err != nil {
		cn.s.c.log.Warn("smpp: write failed", "bind", cn.s.n, "err", err)
	}
}

// errMalformedResp is the outcome of a request whose successful response
// could not be decoded.
var errMalformedResp = errors.New("malformed response")

// fail ends the request seq with err.
func (cn *conn) fail(seq uint32, err error) {
	cn.mu.Lock()
	r, ok := cn.pending[seq]
	delete(cn.pending, seq)
	cn.mu.Unlock()
	if ok {
		r.timer.Stop()
		r.done(nil, err)
	}
}

// respond matches a response to its request.
func (cn *conn) respond(p *pdu.PDU) bool {
	cn.mu.Lock()
	r, ok := cn.pending[p.Seq]
	delete(cn.pending, p.Seq)
	cn.mu.Unlock()
	if !ok {
		return false
	}
	r.timer.Stop()
	r.done(p, nil)
	return true
}

// session is one bind of a channel. It reconnects for as long as the
// channel runs; each connection is its own conn.
type session struct {
	c    *Channel
	n    int    // 1-based bind number
	kind string // transceiver, transmitter, receiver

	mu      sync.Mutex
	cur     *conn // nil when not bound
	state   string
	detail  string
	waiting int // submits in flight on cur (window use)
}

func newSession(c *Channel, n int, kind string) *session {
	return &session{c: c, n: n, kind: kind, state: "connecting"}
}

func (s *session) status() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.detail
}

func (s *session) setStatus(state, detail string) {
	s.mu.Lock()
	s.state, s.detail = state, detail
	s.mu.Unlock()
	s.c.publishStatus()
}

func (s *session) inflight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// acquire takes a window slot on the current connection, if bound and
// not full.
func (s *session) acquire() *conn {
	if s.kind == "receiver" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.waiting >= s.c.set.Window {
		return nil
	}
	s.waiting++
	return s.cur
}

func (s *session) release(cn *conn) {
	s.mu.Lock()
	if s.cur == cn && s.waiting > 0 {
		s.waiting--
	}
	s.mu.Unlock()
	s.c.slots.broadcast()
}

// run connects, binds and serves until ctx ends, reconnecting with
// jittered exponential backoff.
func (s *session) run(ctx context.Context) {
	backoff := time.Duration(s.c.set.ReconnectMin)
	for {
		bound, err := s.serve(ctx)
		if ctx.Err() != nil {
			s.setStatus("stopped", "")
			return
		}
		s.c.stats.reconnects.Add(1)
		if bound {
			backoff = time.Duration(s.c.set.ReconnectMin)
		}
		// full jitter over the upper half: [backoff/2, backoff)
		d := backoff/2 + rand.N(backoff/2+1)
		state := "reconnecting"
		if errors.Is(err, errBindRejected) {
			state = "error"
		}
		s.setStatus(state, fmt.Sprintf("%v (retry in %v)", err, d.Round(time.Millisecond)))
		s.c.log.Warn("smpp: connection ended", "bind", s.n, "err", err, "retryIn", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			s.setStatus("stopped", "")
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Duration(s.c.set.ReconnectMax))
	}
}

var errBindRejected = errors.New("bind rejected")

func (s *session) dial(ctx context.Context) (net.Conn, error) {
	set := s.c.set
	addr := net.JoinHostPort(set.Host, strconv.Itoa(set.Port))
	d := net.Dialer{Timeout: time.Duration(set.ConnectTimeout), KeepAlive: 30 * time.Second}
	if !set.TLS {
		return d.DialContext(ctx, "tcp", addr)
	}
	td := tls.Dialer{NetDialer: &d, Config: &tls.Config{
		ServerName:         set.TLSServerName,
		InsecureSkipVerify: set.TLSInsecureSkipVerify, //nolint:gosec // opt-in setting for test SMSCs
		MinVersion:         tls.VersionTLS12,
	}}
	if td.Config.ServerName == "" {
		td.Config.ServerName = set.Host
	}
	return td.DialContext(ctx, "tcp", addr)
}

// serve runs one connection: dial, bind, keep alive, read. It returns when
// the connection ends; bound says whether the bind succeeded.
func (s *session) serve(ctx context.Context) (bound bool, err error) {
	set := s.c.set
	s.setStatus("connecting", "")
	nc, err := s.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("connect to %s:%d: %w", set.Host, set.Port, err)
	}
	cn := &conn{s: s, nc: nc, w: bufio.NewWriterSize(nc, 16<<10), closed: make(chan struct{}), pending: map[uint32]*request{}}
	defer cn.close()
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(cn) }()

	// bind
	cmd := map[string]uint32{"transceiver": pdu.BindTransceiver, "transmitter": pdu.BindTransmitter, "receiver": pdu.BindReceiver}[s.kind]
	bindResp := make(chan error, 1)
	cn.send(&pdu.PDU{
		Command: cmd, SystemID: set.SystemID, Password: set.Password, SystemType: set.SystemType,
		InterfaceVersion: byte(set.InterfaceVersion), AddrTON: byte(set.AddrTON), AddrNPI: byte(set.AddrNPI), AddressRange: set.AddressRange,
	}, time.Duration(set.ResponseTimeout), func(resp *pdu.PDU, err error) {
		switch {
		case err != nil:
			bindResp <- fmt.Errorf("%s: %w", pdu.CommandName(cmd), err)
		case resp.Status != 0:
			bindResp <- fmt.Errorf("%w by the SMSC: %s (check systemId, password, systemType and the provider's IP allow-list)", errBindRejected, pdu.StatusText(resp.Status))
		default:
			bindResp <- nil
		}
	})
	select {
	case err := <-bindResp:
		if err != nil {
			return false, err
		}
	case err := <-readErr:
		return false, fmt.Errorf("connection closed during bind: %w", err)
	case <-ctx.Done():
		return false, ctx.Err()
	}
	s.mu.Lock()
	s.cur, s.waiting = cn, 0
	s.mu.Unlock()
	s.setStatus("bound", "")
	s.c.log.Info("smpp: bound", "bind", s.n, "type", s.kind, "host", set.Host, "port", set.Port)
	s.c.slots.broadcast()
	defer func() {
		s.mu.Lock()
		s.cur, s.waiting = nil, 0
		s.mu.Unlock()
		s.c.slots.broadcast()
	}()

	tick := time.NewTicker(time.Duration(set.EnquireLink))
	defer tick.Stop()
	for {
		select {
		case err := <-readErr:
			return true, err
		case <-ctx.Done():
			s.unbind(cn)
			return true, ctx.Err()
		case <-tick.C:
			cn.send(&pdu.PDU{Command: pdu.EnquireLink}, time.Duration(set.ResponseTimeout), func(_ *pdu.PDU, err error) {
				if errors.Is(err, errTimeout) {
					s.c.log.Warn("smpp: no enquire_link_resp: connection is half-open, dropping it", "bind", s.n)
					cn.close()
				}
			})
		}
	}
}

// unbind sends unbind and waits briefly for unbind_resp before the
// connection is closed.
func (s *session) unbind(cn *conn) {
	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
	done := make(chan struct{})
	cn.send(&pdu.PDU{Command: pdu.Unbind}, 2*time.Second, func(*pdu.PDU, error) { close(done) })
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// read reads and dispatches PDUs until the connection fails.
func (s *session) read(cn *conn) error {
	defer cn.close()
	r := bufio.NewReaderSize(cn.nc, 32<<10)
	for {
		frame, err := pdu.ReadFrame(r)
		if err != nil {
			if errors.Is(err, pdu.ErrFrame) {
				s.c.stats.malformed.Add(1)
				s.c.log.Error("smpp: unreadable PDU from the SMSC: dropping the connection", "bind", s.n, "err", err, "bytes", hex.EncodeToString(frame))
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("connection closed by the SMSC")
			}
			return err
		}
		p, err := pdu.Decode(frame)
		if err != nil {
			s.c.stats.malformed.Add(1)
			s.c.log.Error("smpp: malformed PDU from the SMSC", "bind", s.n, "err", err, "bytes", hex.EncodeToString(frame))
			cmd, status, seq, _ := pdu.Header(frame)
			if !pdu.IsResponse(cmd) {
				cn.write(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.StatusInvCmdLen, Seq: seq})
				continue
			}
			// A response we cannot read: an error status still says what
			// happened; a success without a readable body leaves the
			// outcome unknown.
			if status != 0 {
				cn.respond(&pdu.PDU{Command: cmd, Status: status, Seq: seq})
			} else {
				cn.fail(seq, fmt.Errorf("%w: %w", errMalformedResp, err))
			}
			continue
		}
		s.c.logPDU(s, "in", p)
		if pdu.IsResponse(p.Command) {
			if !cn.respond(p) && p.Command != pdu.GenericNack {
				s.c.log.Warn("smpp: response to no pending request", "bind", s.n, "pdu", p.String())
			}
			continue
		}
		switch p.Command {
		case pdu.EnquireLink:
			cn.write(p.Response(0))
		case pdu.Unbind:
			cn.write(p.Response(0))
			return errors.New("the SMSC unbound")
		case pdu.DeliverSM, pdu.DataSM:
			s.c.inbound(cn, p)
		case pdu.AlertNotification, pdu.Outbind:
			// nothing to answer
		default:
			cn.write(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.StatusInvCmdID, Seq: p.Seq})
		}
	}
}

// logPDU writes the PDU trace log line when pduLog is on.
func (c *Channel) logPDU(s *session, dir string, p *pdu.PDU) {
	if c.set.PDULog {
		c.log.Info("smpp: pdu", "bind", s.n, "dir", dir, "pdu", p.String())
	}
}

package smpp_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
	"github.com/hermod-sms/hermod/channels/sms"
)

// submitKey identifies a part as the SMSC saw it: destination plus the
// short message (UDH included), which is unique per part in these tests.
func submitKey(s smsctest.Submit) string {
	return s.PDU.Dest + "|" + string(s.PDU.ShortMessage)
}

func TestDisconnectAndBindRefusal(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"binds": 2, "window": 5})
	var n atomic.Int64
	// Answer slowly so that parts are in flight when the SMSC drops.
	b.srv.OnSubmit(func(*pdu.PDU) smsctest.Answer {
		return smsctest.Answer{Delay: 2 * time.Millisecond}
	})
	var msgs []channels.Message
	for i := range 300 {
		msgs = append(msgs, msg(int64(i+1), fmt.Sprintf("+4479%08d", i), mixedBody(i)))
	}
	go func() {
		for b.srv.SubmitCount() < 150 {
			time.Sleep(time.Millisecond)
		}
		b.srv.RefuseBinds(0, 700*time.Millisecond)
		b.srv.DisconnectAll()
		n.Add(1)
	}()
	results := b.ch.Send(context.Background(), msgs)
	require.Equal(t, int64(1), n.Load())
	require.GreaterOrEqual(t, b.ch.Stats().Reconnects, int64(2))

	// Every message went through; duplicates are only parts that were in
	// flight without a response, and those messages say so.
	accepted := map[string]int{}
	answered := map[string]bool{}
	for _, s := range b.srv.Submits() {
		accepted[submitKey(s)]++
		if s.Status == 0 && s.MessageID != "" {
			answered[submitKey(s)] = true
		}
	}
	dupMsgs := 0
	for _, s := range b.srv.Submits() {
		if accepted[submitKey(s)] > 1 {
			dupMsgs++
		}
	}
	noted := 0
	for _, r := range results {
		require.NoError(t, r.Err, "message %d", r.ID)
		if strings.Contains(r.Note, "may be delivered twice") {
			noted++
		}
	}
	t.Logf("submits %d, parts resubmitted %d, messages noted %d", len(b.srv.Submits()), b.ch.Stats().Resubmits, noted)
	if dupMsgs > 0 {
		require.Positive(t, noted, "duplicates without a note in the Trace")
	}
	require.LessOrEqual(t, b.ch.Stats().Resubmits, int64(2*5), "only parts in flight (2 binds x window 5) may be submitted again")
	// Reports: every accepted part of every result gets one.
	requireReportsCover(t, results, b.host)
}

// requireReportsCover checks that every part reference of results got a
// delivered report (duplicates of resubmitted parts may add more).
func requireReportsCover(t *testing.T, results []channels.Result, host *fakeHost) {
	t.Helper()
	want := map[string]bool{}
	for _, r := range results {
		for _, p := range r.Parts {
			want[p.Reference] = true
		}
	}
	require.Eventually(t, func() bool {
		got := map[string]bool{}
		for _, rep := range host.Reports() {
			got[rep.Reference] = true
		}
		for ref := range want {
			if !got[ref] {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond)
}

func TestThrottlingKeepsOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Receipts: smsctest.ReceiptsOff}, map[string]any{"window": 1, "throttlePause": "50ms"})
	var count atomic.Int64
	b.srv.OnSubmit(func(*pdu.PDU) smsctest.Answer {
		if c := count.Add(1); c > 20 && c <= 26 {
			return smsctest.Answer{Status: pdu.StatusThrottled}
		}
		return smsctest.Answer{}
	})
	var msgs []channels.Message
	for i := range 60 {
		msgs = append(msgs, msg(int64(i+1), "+15550100", fmt.Sprintf("message %03d", i)))
	}
	start := time.Now()
	results := b.ch.Send(context.Background(), msgs)
	for _, r := range results {
		require.NoError(t, r.Err)
	}
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "the channel paused")
	var order []string
	for _, s := range b.srv.Submits() {
		if s.Status == 0 {
			order = append(order, string(s.PDU.ShortMessage))
		}
	}
	require.Len(t, order, 60, "nothing dropped, nothing twice")
	for i, body := range order {
		require.Equal(t, fmt.Sprintf("message %03d", i), body, "order kept")
	}
	require.Positive(t, b.ch.Stats().Pauses)
	require.Equal(t, int64(6), b.ch.Stats().Responses["ESME_RTHROTTLED"])
}

func TestThrottleWindowOverManyInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Receipts: smsctest.ReceiptsOff}, map[string]any{"window": 20, "throttlePause": "30ms"})
	b.srv.Throttle(150 * time.Millisecond)
	var msgs []channels.Message
	for i := range 200 {
		msgs = append(msgs, msg(int64(i+1), "+15550101", fmt.Sprintf("m%03d", i)))
	}
	results := b.ch.Send(context.Background(), msgs)
	for _, r := range results {
		require.NoError(t, r.Err)
	}
	ok := 0
	for _, s := range b.srv.Submits() {
		if s.Status == 0 {
			ok++
		}
	}
	require.Equal(t, 200, ok, "nothing dropped, nothing twice")
}

func TestErrorsClassified(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"errorClasses": map[string]string{"ESME_RSYSERR": "permanent"}})
	b.srv.OnSubmit(func(p *pdu.PDU) smsctest.Answer {
		switch p.Dest {
		case "1":
			return smsctest.Answer{Status: pdu.StatusInvDstAdr}
		case "2":
			return smsctest.Answer{Status: pdu.StatusSysErr}
		case "3":
			return smsctest.Answer{Status: 0x45} // ESME_RSUBMITFAIL: temporary by default
		case "4":
			return smsctest.Answer{Drop: true}
		}
		return smsctest.Answer{}
	})
	ctx := context.Background()
	res := b.ch.Send(ctx, []channels.Message{msg(1, "1", "a"), msg(2, "2", "b"), msg(3, "3", "c"), msg(5, "5", "ok")})
	require.True(t, channels.IsPermanent(res[0].Err))
	require.Contains(t, res[0].Err.Error(), "ESME_RINVDSTADR (0x0000000B)")
	require.Equal(t, "ESME_RINVDSTADR/0xB", res[0].ErrorCode)
	require.True(t, channels.IsPermanent(res[1].Err), "errorClasses override")
	require.Error(t, res[2].Err)
	require.False(t, channels.IsPermanent(res[2].Err))
	require.Contains(t, res[2].Err.Error(), "ESME_RSUBMITFAIL (0x00000045)")
	require.NoError(t, res[3].Err)

	// a long message whose first part is refused permanently fails
	res = b.ch.Send(ctx, []channels.Message{msg(6, "1", strings.Repeat("x", 400))})
	require.True(t, channels.IsPermanent(res[0].Err))
	require.Contains(t, res[0].Err.Error(), "part 1 of 3: ESME_RINVDSTADR")
}

func TestResponseTimeoutIsUnknownOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"responseTimeout": "200ms", "enquireLink": "1h"})
	b.srv.OnSubmit(func(p *pdu.PDU) smsctest.Answer { return smsctest.Answer{Drop: p.Dest == "4"} })
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "4", "lost"), msg(2, "5", "fine")})
	require.Error(t, res[0].Err)
	require.False(t, channels.IsPermanent(res[0].Err))
	require.Contains(t, res[0].Err.Error(), "no submit_sm_resp: may have been delivered")
	require.NoError(t, res[1].Err)
	require.Equal(t, int64(1), b.ch.Stats().Timeouts)
}

func TestHalfOpenConnectionIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"enquireLink": "100ms", "responseTimeout": "150ms"})
	b.srv.SilenceEnquireLink(true)
	require.Eventually(t, func() bool { return b.ch.Stats().Reconnects >= 1 }, 5*time.Second, 10*time.Millisecond)
	b.srv.SilenceEnquireLink(false)
	require.Eventually(t, func() bool { return b.ch.Stats().Bound == 1 }, 5*time.Second, 10*time.Millisecond)
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "5", "after rebind")})
	require.NoError(t, res[0].Err)
}

func TestMalformedPDUs(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, nil)
	// A deliver_sm whose body is cut short: answered with generic_nack,
	// the session survives.
	bad, err := pdu.Encode(&pdu.PDU{Command: pdu.DeliverSM, Seq: 77, Source: "123", Dest: "456", ShortMessage: []byte("hello")})
	require.NoError(t, err)
	cut := bad[:len(bad)-4]
	binary.BigEndian.PutUint32(cut, uint32(len(cut)))
	b.srv.SendRaw(cut)
	require.Eventually(t, func() bool { return b.ch.Stats().Malformed == 1 }, 5*time.Second, 10*time.Millisecond)
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "5", "still bound")})
	require.NoError(t, res[0].Err)
	require.Equal(t, int64(0), b.ch.Stats().Reconnects)

	// A length that cannot be right: the stream is lost, the channel
	// rebinds and goes on.
	b.srv.SendRaw([]byte{0, 0, 0, 3, 0xde, 0xad})
	require.Eventually(t, func() bool { return b.ch.Stats().Reconnects == 1 && b.ch.Stats().Bound == 1 }, 5*time.Second, 10*time.Millisecond)
	res = b.ch.Send(context.Background(), []channels.Message{msg(2, "5", "rebound")})
	require.NoError(t, res[0].Err)
}

func TestReportsBeforeResponseAndUnknownIDs(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Receipts: smsctest.ReceiptsBefore, IDFormat: "decimal"}, map[string]any{"responseIdFormat": "decimal", "reportIdFormat": "decimal"})
	b.srv.Receipt("999999", "UNDELIV", "012")
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "5", "hi")})
	require.NoError(t, res[0].Err)
	require.Eventually(t, func() bool { return len(b.host.Reports()) == 2 }, 5*time.Second, 10*time.Millisecond)
	reps := b.host.Reports()
	byRef := map[string]channels.Report{}
	for _, r := range reps {
		byRef[r.Reference] = r
	}
	require.False(t, byRef["999999"].Delivered)
	require.Equal(t, "012", byRef["999999"].ErrorCode)
	require.Equal(t, "UNDELIV", byRef["999999"].State)
	require.True(t, byRef[res[0].Reference].Delivered)
}

func TestReportCommitFailureIsRedelivered(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Redeliver: 100 * time.Millisecond}, nil)
	b.host.mu.Lock()
	b.host.reportErr = errors.New("database is down")
	b.host.mu.Unlock()
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "5", "hi")})
	require.NoError(t, res[0].Err)
	require.Eventually(t, func() bool { return b.srv.Acked()[pdu.StatusRxTAppN] >= 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, b.host.Reports())
	b.host.mu.Lock()
	b.host.reportErr = nil
	b.host.mu.Unlock()
	require.Eventually(t, func() bool { return len(b.host.Reports()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, res[0].Reference, b.host.Reports()[0].Reference)
}

// ucs2Parts splits text into n UDH parts as an SMSC would deliver them.
func ucs2Parts(t *testing.T, text string, ref uint16) [][]byte {
	segs, err := sms.Split(text, sms.UCS2, sms.SplitOptions{Reference: ref})
	require.NoError(t, err)
	var out [][]byte
	for _, s := range segs {
		out = append(out, s.Payload())
	}
	return out
}

func TestIncomingMultipartUCS2(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Redeliver: 200 * time.Millisecond}, nil)
	text := strings.Repeat("Привет мир 😀 ", 12) // 3 UCS-2 parts, emoji across boundaries
	parts := ucs2Parts(t, text, 0x42)
	require.Len(t, parts, 3)

	// First the database fails: nothing may be acknowledged.
	b.host.mu.Lock()
	b.host.receiveErr = errors.New("database is down")
	b.host.mu.Unlock()
	for _, i := range []int{2, 0, 1} { // out of order
		b.srv.Deliver(&pdu.PDU{Command: pdu.DeliverSM, SourceTON: 1, SourceNPI: 1, Source: "447700900123", Dest: "3333",
			ESMClass: pdu.ESMUDHI, DataCoding: 8, ShortMessage: parts[i]})
	}
	require.Eventually(t, func() bool { return b.srv.Acked()[pdu.StatusRxTAppN] >= 3 }, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, b.srv.Acked()[pdu.StatusOK], "no deliver_sm_resp OK while host.Receive fails")
	require.Empty(t, b.host.Incoming())

	b.host.mu.Lock()
	b.host.receiveErr = nil
	b.host.mu.Unlock()
	require.Eventually(t, func() bool { return len(b.host.Incoming()) >= 1 && b.srv.PendingDeliveries() == 0 }, 10*time.Second, 10*time.Millisecond)
	in := b.host.Incoming()
	require.Len(t, in, 1)
	require.Equal(t, text, in[0].Body)
	require.Equal(t, "+447700900123", in[0].From)
	require.Equal(t, 3, in[0].TotalParts)
	require.Equal(t, 8, in[0].DataCoding)
}

func TestIncomingSARAndTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"reassemblyTimeout": "300ms"})
	sar := func(ref uint16, total, n byte, text string) *pdu.PDU {
		p := &pdu.PDU{Command: pdu.DeliverSM, Source: "123", Dest: "456", ShortMessage: []byte(text)}
		p.SetTLV(pdu.TagSarMsgRefNum, []byte{byte(ref >> 8), byte(ref)})
		p.SetTLV(pdu.TagSarTotalSegments, []byte{total})
		p.SetTLV(pdu.TagSarSegmentSeqnum, []byte{n})
		return p
	}
	b.srv.Deliver(sar(7, 2, 2, "world"))
	b.srv.Deliver(sar(7, 2, 1, "hello "))
	b.srv.Deliver(sar(8, 3, 1, "only "))
	b.srv.Deliver(sar(8, 3, 3, "some"))
	require.Eventually(t, func() bool { return len(b.host.Incoming()) == 2 }, 5*time.Second, 10*time.Millisecond)
	bodies := map[string]int{}
	for _, in := range b.host.Incoming() {
		bodies[in.Body] = in.TotalParts
	}
	require.Equal(t, map[string]int{"hello world": 2, "only some": 3}, bodies)
	require.Eventually(t, func() bool { return b.srv.PendingDeliveries() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestBindRefusedStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, nil)
	b.srv.RefuseBinds(pdu.StatusInvPaswd, time.Hour)
	b.srv.DisconnectAll()
	require.Eventually(t, func() bool {
		b.host.mu.Lock()
		defer b.host.mu.Unlock()
		last := b.host.states[len(b.host.states)-1]
		return strings.HasPrefix(last, "error: ") && strings.Contains(last, "ESME_RINVPASWD (0x0000000E)")
	}, 5*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := b.ch.Send(ctx, []channels.Message{msg(1, "5", "nobody bound")})
	require.Error(t, res[0].Err)
	require.Contains(t, res[0].Err.Error(), "not sent")
	require.False(t, channels.IsPermanent(res[0].Err))
}

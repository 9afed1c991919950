package smpp_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
)

// BenchmarkChannelLoopback measures the channel alone (no database): short
// messages with delivery reports through the test SMSC; the figure is
// messages per second until every report reached the (fake) Host.
//
//	go test -run XXX -bench ChannelLoopback -benchtime 20000x ./channels/smpp/
func BenchmarkChannelLoopback(b *testing.B) {
	bb := setup(b, smsctest.Config{}, map[string]any{"window": 100, "binds": 2})
	msgs := make([]channels.Message, 0, 200)
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		msgs = msgs[:0]
		for i := 0; i < 200 && sent+i < b.N; i++ {
			msgs = append(msgs, channels.Message{ID: int64(sent + i), To: "+3161234" + strconv.Itoa(sent+i), From: "Hermod", Body: "benchmark message", DataCoding: -1, RequestDeliveryReport: true})
		}
		for _, r := range bb.ch.Send(context.Background(), msgs) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		sent += len(msgs)
	}
	for len(bb.host.Reports()) < b.N {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkSMSCLimit measures the test SMSC itself: one connection,
// pipelined submit_sm with receipts, as fast as the SMSC answers.
func BenchmarkSMSCLimit(b *testing.B) {
	srv, err := smsctest.Start(smsctest.Config{})
	require.NoError(b, err)
	defer srv.Close()
	nc, err := net.Dial("tcp", net.JoinHostPort(srv.Host(), strconv.Itoa(srv.Port())))
	require.NoError(b, err)
	defer nc.Close()
	w := bufio.NewWriter(nc)
	r := bufio.NewReader(nc)
	var mu sync.Mutex
	write := func(p *pdu.PDU, flush bool) {
		buf, err := pdu.Encode(p)
		if err != nil {
			panic(err)
		}
		mu.Lock()
		w.Write(buf)
		if flush {
			w.Flush()
		}
		mu.Unlock()
	}
	write(&pdu.PDU{Command: pdu.BindTransceiver, Seq: 1, SystemID: "bench", Password: "x", InterfaceVersion: 0x34}, true)
	done := make(chan error, 1)
	go func() {
		resps, receipts := 0, 0
		for resps < b.N+1 || receipts < b.N {
			frame, err := pdu.ReadFrame(r)
			if err != nil {
				done <- err
				return
			}
			p, err := pdu.Decode(frame)
			if err != nil {
				done <- err
				return
			}
			switch p.Command {
			case pdu.DeliverSM:
				receipts++
				write(p.Response(0), true)
			default:
				resps++
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		write(&pdu.PDU{Command: pdu.SubmitSM, Seq: uint32(i + 2), Dest: fmt.Sprint(i), RegisteredDelivery: 1, ShortMessage: []byte("benchmark message")}, i%64 == 63 || i == b.N-1)
	}
	require.NoError(b, <-done)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

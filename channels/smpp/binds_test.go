package smpp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
)

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsctest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{TLS: selfSigned(t)}, map[string]any{"tls": true, "tlsInsecureSkipVerify": true})
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "+3161", "over TLS")})
	require.NoError(t, res[0].Err)
	requireAllMatched(t, res, b.host)
}

func TestTLSCertificateChecked(t *testing.T) {
	t.Parallel()
	srv, err := smsctest.Start(smsctest.Config{TLS: selfSigned(t)})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	raw := fmt.Appendf(nil, `{"host":%q,"port":%d,"tls":true,"reconnectMin":"50ms","reconnectMax":"100ms","statsInterval":-1}`, srv.Host(), srv.Port())
	host := newFakeHost(t)
	ch, err := channels.New("smpp", channels.Config{Name: "t", Settings: raw, Logger: host.log})
	require.NoError(t, err)
	require.NoError(t, ch.Start(context.Background(), host))
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		host.mu.Lock()
		defer host.mu.Unlock()
		for _, s := range host.states {
			if strings.Contains(s, "certificate") {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "an unknown certificate is refused and says so")
	require.Zero(t, srv.Binds())
}

func TestTransmitterWithReceiverBind(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"bindType": "transmitter", "binds": 2, "receiverBinds": 1})
	var msgs []channels.Message
	for i := range 30 {
		msgs = append(msgs, msg(int64(i+1), fmt.Sprintf("+3161%03d", i), mixedBody(i)))
	}
	res := b.ch.Send(context.Background(), msgs)
	requireAllMatched(t, res, b.host)
	require.Equal(t, 3, b.ch.Stats().Bound)
}

func TestThroughputLimitCountsParts(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{Receipts: smsctest.ReceiptsOff}, map[string]any{"throughput": 100})
	var msgs []channels.Message
	for i := range 10 {
		msgs = append(msgs, msg(int64(i+1), "+3161", mixedBody(1))) // 3+ parts each
	}
	start := time.Now()
	res := b.ch.Send(context.Background(), msgs)
	parts := 0
	for _, r := range res {
		require.NoError(t, r.Err)
		parts += len(r.Parts)
	}
	require.GreaterOrEqual(t, parts, 30)
	// 100 parts/s with a burst of 10: at least (parts-10)/100 seconds.
	require.GreaterOrEqual(t, time.Since(start), time.Duration(parts-10)*10*time.Millisecond)
}

func TestReceiveOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, smsctest.Config{}, map[string]any{"bindType": "receiver"})
	require.True(t, b.ch.ReceiveOnly())
	res := b.ch.Send(context.Background(), []channels.Message{msg(1, "1", "x")})
	require.True(t, channels.IsPermanent(res[0].Err))
}

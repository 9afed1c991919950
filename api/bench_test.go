package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// The benchmarks post over real loopback TCP to a live server (httptest),
// from concurrent clients, as a web site's workers would. Run them with
//
//	go test ./api/ -run '^$' -bench . -benchtime 4000x
//	HERMOD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	    go test ./api/ -run '^$' -bench Postgres -benchtime 4000x
//	HERMOD_TEST_SQLSERVER=$(../shared/babelfish/babelfish start) \
//	    go test ./api/ -run '^$' -bench SQLServer -benchtime 4000x
//
// b.N is the number of requests (for batches, of 1,000-message POSTs: use
// -benchtime 40x). Each reports:
//
//   - msgs/s: messages accepted per second (batches)
//   - req/s: requests answered per second
//   - p50-ms, p99-ms: request latency percentiles
//
// The clients=N sub-benchmarks keep N requests in flight (a closed loop:
// the throughput ceiling). The rate=N sub-benchmarks start N requests per
// second on a fixed schedule whatever the answers (an open loop: a stalled
// server shows up as latency, not as a lower rate); lag-p99-ms says how late
// the load generator itself, which shares the CPUs, started them.
//
// The server's MessageInsert calls are timed too: msgs/insert is how many
// messages one database transaction carried (group commit), insert-p99-ms
// the database's own p99.

// batchSize is the messages per POST of the batch benchmarks.
const batchSize = 1000

func benchBatch(b *testing.B, backend string) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprint("clients=", clients), func(b *testing.B) {
			lg := newLoadGen(b, backend)
			bodies := make([][]byte, b.N)
			for i := range bodies {
				var batch client.Batch
				for j := range batchSize {
					batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", j), Body: "Benchmark message body of a typical length for a notification", BatchID: fmt.Sprint("bench-", i)})
				}
				bodies[i], _ = json.Marshal(batch)
			}
			b.ResetTimer()
			r := lg.closed(clients, func(i int) []byte { return bodies[i] })
			b.StopTimer()
			r.report(b, batchSize)
		})
	}
}

func benchSingle(b *testing.B, backend string) {
	plain := []byte(`{"ToAddress":"+31612345678","Body":"Your code is 1234"}`)
	channel := []byte(`{"ToAddress":"+31612345678","Body":"Your code is 1234","Channel":"sim"}`)
	for _, bc := range []struct {
		name    string
		clients int    // closed loop
		rate    int    // open loop
		body    []byte // the POST body
	}{
		{"clients=1", 1, 0, plain},
		{"clients=16", 16, 0, plain},
		{"clients=64", 64, 0, plain},
		{"clients=16/channel", 16, 0, channel},
		{"rate=500", 0, 500, plain},
		{"rate=1000", 0, 1000, plain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lg := newLoadGen(b, backend)
			_, err := lg.store.ChannelCreate(b.Context(), store.Channel{Name: "sim", Type: testChannelType, Settings: "{}", Enabled: true})
			if err != nil {
				b.Fatal(err)
			}
			body := func(int) []byte { return bc.body }
			b.ResetTimer()
			var r loadResult
			if bc.rate > 0 {
				r = lg.open(bc.rate, body)
			} else {
				r = lg.closed(bc.clients, body)
			}
			b.StopTimer()
			r.report(b, 1)
		})
	}
}

func BenchmarkSendBatch1000SQLite(b *testing.B)    { benchBatch(b, testdb.SQLite) }
func BenchmarkSendBatch1000Postgres(b *testing.B)  { benchBatch(b, testdb.Postgres) }
func BenchmarkSendBatch1000SQLServer(b *testing.B) { benchBatch(b, testdb.SQLServer) }
func BenchmarkSendSingleSQLite(b *testing.B)       { benchSingle(b, testdb.SQLite) }
func BenchmarkSendSinglePostgres(b *testing.B)     { benchSingle(b, testdb.Postgres) }
func BenchmarkSendSingleSQLServer(b *testing.B)    { benchSingle(b, testdb.SQLServer) }

// loadGen posts n requests to a server.
type loadGen struct {
	t      testing.TB
	n      int
	url    string
	key    string
	client *http.Client
	failed atomic.Bool
	probe  *insertProbe // nil: the server is not in this process
	store  store.Store
	until  time.Time // closed loop: stop sending then; zero: after n
}

// newLoadGen starts a server on a fresh store of backend with
// the default key cache, as a production server runs.
func newLoadGen(b *testing.B, backend string) *loadGen {
	probe := &insertProbe{}
	tb := setup(b, setupOpts{backend: backend, cfg: func(c *Config) {
		c.KeyCacheTTL = 0
		c.RateLimit = 1 << 30 // limited, as in production, but not reached
		probe.Store, c.Store = c.Store, probe
	}, handler: probe.handler})
	lg := newRemoteLoadGen(b, b.N, tb.srv.URL, tb.sender)
	lg.probe, lg.store = probe, tb.store
	return lg
}

// newRemoteLoadGen posts n requests to the server at url with key.
func newRemoteLoadGen(t testing.TB, n int, url, key string) *loadGen {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &loadGen{t: t, n: n, url: strings.TrimSuffix(url, "/") + "/api/v1/messages", key: key, client: &http.Client{Transport: tr}}
}

// insertProbe times the server's MessageInsert calls: how many messages
// one database transaction carried, and how long the database took.
type insertProbe struct {
	store.Store
	mu      sync.Mutex
	msgs    int
	durs    []time.Duration
	handled []time.Duration
}

func (p *insertProbe) MessageInsert(ctx context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	t0 := time.Now()
	res, err := p.Store.MessageInsert(ctx, msgs)
	d := time.Since(t0)
	p.mu.Lock()
	p.msgs += len(msgs)
	p.durs = append(p.durs, d)
	p.mu.Unlock()
	return res, err
}

func (p *insertProbe) reset() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.msgs, p.durs, p.handled = 0, nil, nil
	p.mu.Unlock()
}

// handler times the server's handling of each request, from the request
// read to the answer written: the server's share of the latency, without
// the network, the client and the scheduling of both.
func (p *insertProbe) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(t0)
		p.mu.Lock()
		p.handled = append(p.handled, d)
		p.mu.Unlock()
	})
}

// loadResult is what a run measured.
type loadResult struct {
	n       int
	elapsed time.Duration
	lats    []time.Duration // per request
	inserts []time.Duration // per MessageInsert
	msgs    int             // messages inserted
	lags    []time.Duration // open loop: how late each request was sent
	handled []time.Duration // per request, in the server's handler
}

func (lg *loadGen) result(elapsed time.Duration, lats []time.Duration) loadResult {
	r := loadResult{n: len(lats), elapsed: elapsed, lats: lats}
	if p := lg.probe; p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		r.inserts, r.msgs, r.handled = slices.Clone(p.durs), p.msgs, slices.Clone(p.handled)
	}
	return r
}

// closed runs n requests from clients goroutines, each sending its next
// request when the previous one is answered.
func (lg *loadGen) closed(clients int, body func(i int) []byte) loadResult {
	lg.probe.reset()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var local []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= lg.n || lg.failed.Load() || !lg.until.IsZero() && time.Now().After(lg.until) {
					break
				}
				t0 := time.Now()
				lg.post(body(i))
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lg.result(time.Since(start), lats)
}

// open starts n requests at rate per second on a fixed schedule, each in
// its own goroutine, and also records how late each one started.
func (lg *loadGen) open(rate int, body func(i int) []byte) loadResult {
	lg.probe.reset()
	interval := time.Second / time.Duration(rate)
	lats := make([]time.Duration, lg.n)
	lags := make([]time.Duration, lg.n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range lg.n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if lg.failed.Load() {
			break
		}
		wg.Go(func() {
			t0 := time.Now()
			lg.post(body(i))
			lats[i], lags[i] = time.Since(t0), t0.Sub(at)
		})
	}
	wg.Wait()
	r := lg.result(time.Since(start), lats)
	r.lags = lags
	return r
}

// post sends one POST and checks that it was accepted.
func (lg *loadGen) post(body []byte) {
	req, err := http.NewRequest("POST", lg.url, bytes.NewReader(body))
	if err != nil {
		lg.fail(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+lg.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := lg.client.Do(req)
	if err != nil {
		lg.fail(err)
		return
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		lg.fail(fmt.Errorf("status %d: %s", resp.StatusCode, out))
	}
}

func (lg *loadGen) fail(err error) {
	if lg.failed.CompareAndSwap(false, true) {
		lg.t.Error(err)
	}
}

// metric is one figure of a run.
type metric struct {
	value float64
	unit  string
}

// metrics are a run's figures: throughput, request latency, and where the
// server is in this process, its handler's p99, how many messages one
// database insert carried and the database's p99 (its share of the tail).
func (r loadResult) metrics(msgsPerReq int) []metric {
	secs := r.elapsed.Seconds()
	var ms []metric
	if msgsPerReq > 1 {
		ms = append(ms, metric{float64(r.n*msgsPerReq) / secs, "msgs/s"})
	}
	ms = append(ms,
		metric{float64(r.n) / secs, "req/s"},
		metric{percentile(r.lats, 0.50), "p50-ms"},
		metric{percentile(r.lats, 0.99), "p99-ms"})
	if len(r.handled) > 0 {
		ms = append(ms, metric{percentile(r.handled, 0.99), "server-p99-ms"})
	}
	if len(r.lags) > 0 {
		ms = append(ms, metric{percentile(r.lags, 0.99), "lag-p99-ms"})
	}
	if len(r.inserts) > 0 {
		ms = append(ms,
			metric{float64(r.msgs) / float64(len(r.inserts)), "msgs/insert"},
			metric{percentile(r.inserts, 0.99), "insert-p99-ms"})
	}
	return ms
}

// report sets the metrics as the benchmark's.
func (r loadResult) report(b *testing.B, msgsPerReq int) {
	for _, m := range r.metrics(msgsPerReq) {
		b.ReportMetric(m.value, m.unit)
	}
	b.ReportMetric(0, "ns/op") // wall time per request means little with concurrency
}

// percentile returns the p quantile of ds in milliseconds; it sorts ds.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[min(len(ds)-1, int(float64(len(ds))*p))].Microseconds()) / 1000
}

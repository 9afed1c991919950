package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermod-sms/hermod/api/client"
)

// The benchmarks post over real HTTP to a live server. Run them with
//
//	go test ./api/ -run '^$' -bench . -benchtime 20x
//	HERMOD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./api/ -run '^$' -bench Postgres -benchtime 20x
//
// They report msgs/s (batches) or req/s and p50/p99 latency (single posts).

func benchBatch(b *testing.B, pg bool) {
	tb := setup(b, setupOpts{postgres: pg, cfg: func(c *Config) { c.KeyCacheTTL = 0 }})
	const size = 1000
	bodies := make([][]byte, b.N)
	for i := range bodies {
		var batch client.Batch
		for j := range size {
			batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", j), Body: "Benchmark message body of a typical length for a notification", BatchID: fmt.Sprint("bench-", i)})
		}
		bodies[i], _ = json.Marshal(batch)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		postBench(b, tb, bodies[i], http.StatusCreated)
	}
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "msgs/s")
}

func benchSingle(b *testing.B, pg bool) {
	tb := setup(b, setupOpts{postgres: pg, cfg: func(c *Config) { c.KeyCacheTTL = 0 }})
	body := []byte(`{"ToAddress":"+31612345678","Body":"Your code is 1234"}`)
	var (
		mu   sync.Mutex
		lats []time.Duration
		n    atomic.Int64
	)
	b.SetParallelism(4) // 4 × GOMAXPROCS concurrent clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			t0 := time.Now()
			postBench(b, tb, body, http.StatusCreated)
			local = append(local, time.Since(t0))
			n.Add(1)
		}
		mu.Lock()
		lats = append(lats, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(float64(len(lats))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func postBench(b *testing.B, tb *testBundle, body []byte, want int) {
	req, _ := http.NewRequest("POST", tb.srv.URL+"/api/v1/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tb.sender)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("status %d: %s", resp.StatusCode, out)
	}
}

func BenchmarkSendBatch1000SQLite(b *testing.B)   { benchBatch(b, false) }
func BenchmarkSendBatch1000Postgres(b *testing.B) { benchBatch(b, true) }
func BenchmarkSendSingleSQLite(b *testing.B)      { benchSingle(b, false) }
func BenchmarkSendSinglePostgres(b *testing.B)    { benchSingle(b, true) }

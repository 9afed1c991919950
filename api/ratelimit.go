package api

import (
	"math"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second, at most burst stored.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst int, now time.Time) *bucket {
	return &bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: now}
}

// take takes one token. When none is left it returns false and how long to
// wait until one is.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, wait
}

// limiter holds one bucket per API key.
type limiter struct {
	mu      sync.Mutex
	buckets map[int64]*bucket
	rates   map[int64]int
}

func newLimiter() *limiter {
	return &limiter{buckets: map[int64]*bucket{}, rates: map[int64]int{}}
}

// allow takes a token from the bucket of key id, which refills at rate
// requests per second with a burst of twice that (at least 1).
func (l *limiter) allow(id int64, rate int, now time.Time) (bool, time.Duration) {
	if rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	b, ok := l.buckets[id]
	if !ok || l.rates[id] != rate {
		b = newBucket(rate, max(2*rate, 1), now)
		l.buckets[id] = b
		l.rates[id] = rate
	}
	l.mu.Unlock()
	return b.take(now)
}

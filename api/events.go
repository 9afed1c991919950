package api

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one message state change. The engine's own event type is
// adapted to this one by the command that wires the two together, so that
// this package does not depend on the engine.
type Event struct {
	MessageID int64
	Status    string
	ChannelID int64
	Time      time.Time
}

// EventSource is what GET /api/v1/events streams from: the engine, through
// an adapter. Subscribe returns a channel of events, buffered to buf, and a
// function that ends the subscription and closes the channel. A source
// drops events for a subscriber whose buffer is full rather than block.
type EventSource interface {
	Subscribe(buf int) (<-chan Event, func())
}

// Nudger is what the API needs of the engine to make it look at the queue
// at once after messages were inserted or changed (SQLite and SQL Server
// poll otherwise).
type Nudger interface {
	Nudge()
}

// Broadcaster is an EventSource that fans published events out to every
// subscriber. The server publishes the changes it makes itself (a message
// submitted, cancelled or sent again) to its own Broadcaster; a command can
// use another one to adapt the engine's events:
//
//	b := api.NewBroadcaster()
//	go func() {
//		ch, cancel := eng.Subscribe(256)
//		defer cancel()
//		for e := range ch {
//			b.Publish(api.Event{MessageID: e.MessageID, Status: e.Status, ChannelID: e.ChannelID, Time: e.Time})
//		}
//	}()
type Broadcaster struct {
	mu      sync.RWMutex
	subs    map[int]chan Event
	next    int
	dropped atomic.Int64
}

// NewBroadcaster returns a Broadcaster without subscribers.
func NewBroadcaster() *Broadcaster {
	return &Broadcaster{subs: map[int]chan Event{}}
}

// Publish sends e to every subscriber whose buffer has room, and counts the
// others as dropped. It never blocks.
func (b *Broadcaster) Publish(e Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Dropped counts the events not delivered to a slow subscriber.
func (b *Broadcaster) Dropped() int64 { return b.dropped.Load() }

// Subscribe implements EventSource.
func (b *Broadcaster) Subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, max(buf, 1))
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = ch
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, id)
			b.mu.Unlock()
			close(ch)
		})
	}
}

func (b *Broadcaster) hasSubscribers() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs) > 0
}

// AdaptEvents makes an EventSource of any Subscribe function, converting
// each event with convert. It lets a command hand the engine's events to
// the API without this package importing the engine:
//
//	api.AdaptEvents(eng.Subscribe, func(e engine.Event) api.Event { return api.Event(e) })
//
// Events are dropped when the subscriber's buffer is full.
func AdaptEvents[E any](subscribe func(buf int) (<-chan E, func()), convert func(E) Event) EventSource {
	return adaptedSource[E]{subscribe, convert}
}

type adaptedSource[E any] struct {
	subscribe func(int) (<-chan E, func())
	convert   func(E) Event
}

func (a adaptedSource[E]) Subscribe(buf int) (<-chan Event, func()) {
	in, stop := a.subscribe(buf)
	out := make(chan Event, max(buf, 1))
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case e, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- a.convert(e):
				default:
				}
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			stop()
		})
	}
}

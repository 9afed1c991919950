package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlite"
)

// A message's life through the store: an application inserts it, the
// router queues it on a channel, a channel claims it under a lease, the
// provider accepts it and its delivery report arrives.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hermod-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "hermod.db"), sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ch, err := s.ChannelCreate(ctx, store.Channel{Name: "sim", Type: "simulator", Enabled: true})
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31612345678", Body: "Hello from Hermod"}})
	if err != nil {
		log.Fatal(err)
	}
	id := res[0].ID

	if _, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 100}); err != nil {
		log.Fatal(err)
	}
	claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: 100, Owner: "node-1", Lease: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claimed:", len(claimed), claimed[0].Status)

	if _, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: id, Owner: "node-1", Reference: "abc123",
		Parts: []store.Part{{PartNumber: 1, Reference: "abc123"}}}}); err != nil {
		log.Fatal(err)
	}
	if _, err := s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: ch.ID, Reference: "abc123", Status: store.PartDelivered}}); err != nil {
		log.Fatal(err)
	}
	m, err := s.MessageGet(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", m.Status, "reference:", m.Reference)
	// Output:
	// claimed: 1 SENDING
	// status: DELIVERED reference: abc123
}

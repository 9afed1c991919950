package engine_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "github.com/hermod-sms/hermod/channels/simulator" // registers channel type "simulator"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlite"
)

// An engine sends what applications insert: here one message through a
// simulator channel, from SCHEDULED to DELIVERED.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hermod-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "hermod.db"), sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ChannelCreate(ctx, store.Channel{Name: "sim1", Type: "simulator", Settings: `{"reportDelay": "10ms"}`, Enabled: true}); err != nil {
		log.Fatal(err)
	}

	eng, err := engine.New(engine.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// What an application does: insert a row (here through the store).
	res, err := st.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31612345678", Body: "Hello from Hermod"}})
	if err != nil {
		log.Fatal(err)
	}
	eng.Nudge() // Hermod inserted it itself: no need to wait for the next poll

	// Read the row back until the delivery report arrived.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := st.MessageGet(ctx, res[0].ID)
		if err != nil {
			log.Fatal(err)
		}
		if m.Status == store.StatusDelivered {
			fmt.Println(m.Status, "in", m.TotalParts, "part after", m.Attempts, "attempt")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		log.Fatal(err)
	}
	// Output: DELIVERED in 1 part after 1 attempt
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/hermod-sms/hermod/api"
	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store/sqlite"
)

// startServer runs a Hermod API on a fresh SQLite database and returns its
// URL and an admin key. A real program talks to `hermod run` instead.
func startServer() (url, key string, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hermod-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hermod.db"), sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_, key, err = api.CreateKey(ctx, st, "example", []string{api.ScopeAdmin}, api.KeyOptions{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := api.NewServer(api.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	return ts.URL, key, func() { ts.Close(); st.Close(); os.RemoveAll(dir) }
}

func ExampleClient_Send() {
	url, key, stop := startServer()
	defer stop()
	ctx := context.Background()

	c := client.New(url, key)
	res, err := c.Send(ctx, client.NewMessage{ToAddress: "+31612345678", Body: "Your code is 1234", ClientReference: "login-42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Existing)

	// The same ClientReference again: the same message, not a second one.
	again, err := c.Send(ctx, client.NewMessage{ToAddress: "+31612345678", Body: "Your code is 1234", ClientReference: "login-42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.ID == res.ID, again.Existing)

	m, err := c.Message(ctx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.ToAddress, m.Direction)
	// Output:
	// SCHEDULED false
	// true true
	// +31612345678 OUT
}

func ExampleClient_SendBatch() {
	url, key, stop := startServer()
	defer stop()
	ctx := context.Background()

	c := client.New(url, key)
	var msgs []client.NewMessage
	for _, to := range []string{"+31611111111", "+31622222222", "+31633333333"} {
		msgs = append(msgs, client.NewMessage{ToAddress: to, Body: "Opening hours changed", BatchID: "notice-7"})
	}
	results, err := c.SendBatch(ctx, msgs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(results), "stored")

	n := 0
	for m, err := range c.AllMessages(ctx, client.ListOptions{BatchID: "notice-7", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		_ = m
	}
	fmt.Println(n, "listed")
	// Output:
	// 3 stored
	// 3 listed
}

func ExampleProblem() {
	url, key, stop := startServer()
	defer stop()

	c := client.New(url, key)
	_, err := c.Send(context.Background(), client.NewMessage{ToAddress: "0031 6 1234", Body: "hi"})
	var p *client.Problem
	if errors.As(err, &p) {
		fmt.Println(p.Status, p.Errors[0].Field)
	}
	// Output:
	// 400 ToAddress
}

func ExampleClient_Cancel() {
	url, key, stop := startServer()
	defer stop()
	ctx := context.Background()

	c := client.New(url, key)
	res, err := c.Send(ctx, client.NewMessage{ToAddress: "+31612345678", Body: "later"})
	if err != nil {
		log.Fatal(err)
	}
	m, err := c.Cancel(ctx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Status)
	_, err = c.Cancel(ctx, res.ID)
	fmt.Println(client.StatusOf(err))
	// Output:
	// CANCELLED
	// 409
}

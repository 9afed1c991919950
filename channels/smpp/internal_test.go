package smpp

import (
	"encoding/json"
	"testing"

	"github.com/hermod-sms/hermod/channels"
)

func testConfig(t *testing.T, settings string) channels.Config {
	t.Helper()
	return channels.Config{ID: 1, Name: "t", Settings: json.RawMessage(settings)}
}

func msgFrom(from string) channels.Message {
	return channels.Message{From: from, DataCoding: -1}
}

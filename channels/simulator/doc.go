// Package simulator is a channel that sends nowhere: it accepts messages,
// gives them provider references, and sends delivery reports back after a
// delay, with configurable latency, failures and incoming traffic. It is
// what tests, demos and `hermod bench` run against.
//
// It registers itself as channel type "simulator":
//
//	import _ "github.com/hermod-sms/hermod/channels/simulator"
//
// Settings (Channels.Settings, JSON; every field is optional):
//
//	{
//	  "latency":           "0s",   // time one Send call takes, per batch
//	  "failRate":          0,      // share of messages refused with a temporary error (retried)
//	  "permanentFailRate": 0,      // share refused with a permanent error (FAILED at once)
//	  "undeliveredRate":   0,      // share of accepted messages whose report says not delivered
//	  "noReportRate":      0,      // share of accepted messages that never get a report
//	  "reportDelay":       "50ms", // time between acceptance and the delivery report
//	  "parts":             0,      // parts per message; 0: as a provider counts them (GSM 7-bit: 160 characters in one, 153 per part beyond; UCS-2: 70, 67)
//	  "incomingEvery":     "0s",   // generate an incoming message this often; 0: never
//	  "log":               "",     // file to append "ID<TAB>attempt<TAB>reference" to, one line per accepted message
//	  "batchSize":         50,     // messages per Send call
//	  "concurrency":       2,      // Send calls at once
//	  "seed":              0       // random seed; 0: random
//	}
//
// Durations are strings in Go's form ("2ms", "1.5s") or numbers of
// milliseconds. Rates are between 0 and 1 and are drawn per message.
//
// The log file is opened with O_APPEND and written before Send returns, so
// several processes can share one file and a count of its lines survives a
// kill -9: ReadLog counts the sends of each message, which is how tests and
// benchmarks find duplicates.
package simulator

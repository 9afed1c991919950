package pdu

import (
	"bytes"
	"errors"
	"testing"

	gopdu "github.com/linxGnu/gosmpp/pdu"
	"github.com/stretchr/testify/require"
)

func sampleSubmit() *PDU {
	p := &PDU{Command: SubmitSM, Seq: 42, SourceTON: 5, Source: "Hermod", DestTON: 1, DestNPI: 1, Dest: "31612345678",
		ESMClass: ESMUDHI, RegisteredDelivery: 1, DataCoding: 8, ValidityPeriod: "240203040506700+",
		ShortMessage: []byte{5, 0, 3, 0x42, 2, 1, 0, 'h', 0, 'i'}}
	p.SetTLV(TagUserMessageReference, []byte{0, 7})
	return p
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []*PDU{
		sampleSubmit(),
		{Command: BindTransceiver, Seq: 1, SystemID: "hermod", Password: "secret", SystemType: "SMPP", InterfaceVersion: 0x34, AddressRange: "^316"},
		{Command: BindTransceiverResp, Seq: 1, SystemID: "smsc", TLVs: []TLV{{Tag: TagScInterfaceVersion, Value: []byte{0x34}}}},
		{Command: SubmitSMResp, Seq: 9, MessageID: "ABC123"},
		{Command: DeliverSMResp, Seq: 9},
		{Command: DataSM, Seq: 3, Source: "1", Dest: "2", DataCoding: 0, TLVs: []TLV{{Tag: TagMessagePayload, Value: bytes.Repeat([]byte{'x'}, 300)}}},
		{Command: EnquireLink, Seq: 5},
		{Command: GenericNack, Seq: 5, Status: StatusInvCmdID},
	} {
		b, err := Encode(p)
		require.NoError(t, err, CommandName(p.Command))
		q, err := Decode(b)
		require.NoError(t, err, CommandName(p.Command))
		require.Equal(t, p, q)
	}
}

// TestGosmppReadsWhatHermodWrites decodes Hermod's PDUs with gosmpp's
// independent parser, and the other way round.
func TestGosmppReadsWhatHermodWrites(t *testing.T) {
	t.Parallel()
	b, err := Encode(sampleSubmit())
	require.NoError(t, err)
	g, err := gopdu.Parse(bytes.NewReader(b))
	require.NoError(t, err)
	sm, ok := g.(*gopdu.SubmitSM)
	require.True(t, ok)
	require.Equal(t, int32(42), sm.SequenceNumber)
	require.Equal(t, "31612345678", sm.DestAddr.Address())
	require.Equal(t, byte(1), sm.DestAddr.Ton())
	require.Equal(t, "Hermod", sm.SourceAddr.Address())
	require.Equal(t, byte(1), sm.RegisteredDelivery)
	total, num, ref, found := sm.Message.UDH().GetConcatInfo()
	require.True(t, found)
	require.Equal(t, []byte{2, 1, 0x42}, []byte{total, num, ref})
	data, _ := sm.Message.GetMessageData()
	require.Equal(t, []byte{0, 'h', 0, 'i'}, data)
	require.Equal(t, []byte{0, 7}, sm.OptionalParameters[gopdu.Tag(TagUserMessageReference)].Data)

	// gosmpp writes a deliver_sm; Hermod reads it.
	d := gopdu.NewDeliverSM().(*gopdu.DeliverSM)
	d.SequenceNumber = 77
	_ = d.SourceAddr.SetAddress("447700900123")
	_ = d.DestAddr.SetAddress("3333")
	d.EsmClass = ESMDeliveryReceipt
	msg, err := gopdu.NewBinaryShortMessage([]byte("id:1 stat:DELIVRD"))
	require.NoError(t, err)
	d.Message = msg
	buf := gopdu.NewBuffer(nil)
	d.Marshal(buf)
	p, err := Decode(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, uint32(77), p.Seq)
	require.Equal(t, "447700900123", p.Source)
	require.Equal(t, "id:1 stat:DELIVRD", string(p.ShortMessage))
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	b, err := Encode(sampleSubmit())
	require.NoError(t, err)
	for name, frame := range map[string][]byte{
		"short":             b[:10],
		"length mismatch":   b[:len(b)-1],
		"truncated body":    withLen(b[:30]),
		"cstring unclosed":  withLen(append(append([]byte{}, b[:16]...), 'a', 'b')),
		"trailing octets":   withLen(append(append([]byte{}, b...), 1)),
		"tlv truncated":     withLen(append(append([]byte{}, b...), 0x02, 0x04, 0, 9, 1)),
		"tlv header broken": withLen(append(append([]byte{}, b...), 0x02)),
	} {
		_, err := Decode(frame)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
	_, err = ReadFrame(bytes.NewReader([]byte{0, 0, 0, 4, 1, 2, 3, 4}))
	require.ErrorIs(t, err, ErrFrame)
	_, err = ReadFrame(bytes.NewReader(append([]byte{0, 0, 0, 20}, make([]byte, 8)...)))
	require.ErrorIs(t, err, ErrFrame)

	_, err = Encode(&PDU{Command: SubmitSM, Dest: "1234567890123456789012"})
	require.ErrorContains(t, err, "destination_addr")
	_, err = Encode(&PDU{Command: BindTransmitter, Password: "123456789"})
	require.ErrorContains(t, err, "password")
	require.False(t, errors.Is(err, ErrMalformed))
}

func withLen(b []byte) []byte {
	out := append([]byte{}, b...)
	n := len(out)
	out[0], out[1], out[2], out[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return out
}

func TestStringMasksPassword(t *testing.T) {
	t.Parallel()
	s := (&PDU{Command: BindTransceiver, SystemID: "hermod", Password: "s3cr3t"}).String()
	require.Contains(t, s, `password="***"`)
	require.NotContains(t, s, "s3cr3t")
}

// FuzzDecode: decoding never panics, and whatever decodes re-encodes to a
// frame that decodes to the same PDU.
func FuzzDecode(f *testing.F) {
	for _, p := range []*PDU{sampleSubmit(), {Command: DeliverSM, ESMClass: ESMDeliveryReceipt, ShortMessage: []byte("id:1 stat:DELIVRD")},
		{Command: SubmitSMResp, MessageID: "x"}, {Command: BindTransceiverResp, SystemID: "s"}, {Command: DataSM, Dest: "1"}} {
		b, err := Encode(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := Decode(frame)
		if err != nil {
			return
		}
		_ = p.String()
		b, err := Encode(p)
		if err != nil {
			return // fields Hermod never writes (over-long values) need not re-encode
		}
		q, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode %x: %v", b, err)
		}
		b2, err := Encode(q)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("not stable: %x vs %x (%v)", b, b2, err)
		}
	})
}

// FuzzReadFrame: framing never panics and never returns a frame of the
// wrong length.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			b, err := ReadFrame(r)
			if err != nil {
				return
			}
			if int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])) != len(b) {
				t.Fatalf("frame length mismatch")
			}
		}
	})
}

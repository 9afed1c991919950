package sms_test

import (
	"fmt"
	"strings"

	"github.com/hermod-sms/hermod/channels/sms"
)

func ExampleCount() {
	fmt.Printf("%+v\n", sms.Count("Your code is 1234"))
	fmt.Printf("%+v\n", sms.Count("Total: 5€ {paid}"))
	fmt.Printf("%+v\n", sms.Count("Спасибо! 👍"))
	fmt.Printf("%+v\n", sms.Count(strings.Repeat("a", 161)))
	// Output:
	// {Encoding:GSM7 Segments:1 Units:17 PerSegment:160 Remaining:143}
	// {Encoding:GSM7 Segments:1 Units:19 PerSegment:160 Remaining:141}
	// {Encoding:UCS2 Segments:1 Units:11 PerSegment:70 Remaining:59}
	// {Encoding:GSM7 Segments:2 Units:161 PerSegment:153 Remaining:145}
}

func ExampleSplit() {
	// A € that would start at septet 153 moves whole to the second part.
	text := strings.Repeat("a", 152) + "€ is the price"
	enc, err := sms.Resolve(-1, text) // -1: automatic, as channels.Message.DataCoding holds it
	if err != nil {
		panic(err)
	}
	segs, err := sms.Split(text, enc, sms.SplitOptions{Reference: 0x2A})
	if err != nil {
		panic(err)
	}
	for _, s := range segs {
		// SMPP: short_message = s.Payload(), esm_class |= 0x40 when s.UDH != nil,
		// data_coding = enc.DataCoding().
		fmt.Printf("part %d/%d: data_coding %d, UDH % X, %d septets, starts %q\n",
			s.Number, s.Total, enc.DataCoding(), s.UDH, s.Units, s.Text[:min(len(s.Text), 6)])
	}
	// Output:
	// part 1/2: data_coding 0, UDH 05 00 03 2A 02 01, 152 septets, starts "aaaaaa"
	// part 2/2: data_coding 0, UDH 05 00 03 2A 02 02, 15 septets, starts "€ is"
}

func ExampleParseUDH() {
	// Two received parts, out of order, each short_message with a header.
	received := [][]byte{
		{0x05, 0x00, 0x03, 0x07, 0x02, 0x02, 0x1B, 0x65, 0x21},
		{0x05, 0x00, 0x03, 0x07, 0x02, 0x01, 0x50, 0x61, 0x79, 0x20},
	}
	parts := map[int][]byte{}
	for _, msg := range received {
		h, data, err := sms.ParseUDH(msg)
		if err != nil {
			panic(err)
		}
		c, ok := h.Concat()
		if !ok {
			panic("not a part of a concatenated message")
		}
		fmt.Printf("reference %d, part %d of %d\n", c.Reference, c.Number, c.Total)
		parts[c.Number] = data
	}
	// Decode the parts' data joined, not each part alone.
	var all []byte
	for n := 1; n <= len(parts); n++ {
		all = append(all, parts[n]...)
	}
	text, err := sms.GSM7.Decode(all)
	if err != nil {
		panic(err)
	}
	fmt.Println(text)
	// Output:
	// reference 7, part 2 of 2
	// reference 7, part 1 of 2
	// Pay €!
}

func ExamplePackSeptets() {
	// PDU mode: GSM7 text behind a 6-octet header starts after one fill bit.
	udh, err := sms.ConcatUDH(sms.Concat{Reference: 1, Total: 2, Number: 1})
	if err != nil {
		panic(err)
	}
	septets, err := sms.GSM7.Encode("hi")
	if err != nil {
		panic(err)
	}
	packed, err := sms.PackSeptets(septets, sms.FillBits(len(udh)))
	if err != nil {
		panic(err)
	}
	udl := (len(udh)*8+sms.FillBits(len(udh)))/7 + len(septets) // TP-UDL counts septets
	fmt.Printf("TP-UDL %d, TP-UD % X % X\n", udl, udh, packed)
	// Output:
	// TP-UDL 9, TP-UD 05 00 03 01 02 01 D0 69
}

// Package sms turns text into short messages and back: the GSM 03.38
// 7-bit alphabet, Latin-1 and UCS-2, and the cutting of a long text into
// segments. The SMPP and GSM modem channels, the HTTP API and the Manager
// all use it, so that the count a user sees while typing is exactly what a
// channel sends.
//
// # Choosing an encoding
//
// A text goes out in GSM 7-bit (SMPP data_coding 0) when every character is
// in the GSM 03.38 default alphabet or its extension table, and in UCS-2
// (data_coding 8) otherwise: Choose(text). Latin-1 (data_coding 3) is used
// only when the caller lists it, because many SMSCs mis-handle it. Resolve
// applies the DataCoding an application stored with the message (-1 for
// automatic) and checks that the text fits it. EncodingOf reads the
// data_coding of a received message.
//
// The extension characters ^ { } \ [ ~ ] | € and form feed take two
// septets (an escape, 0x1B, and a code), so "€" counts twice. UCS-2 is
// really UTF-16: an emoji outside the Basic Multilingual Plane is a
// surrogate pair and counts twice too.
//
// # Splitting
//
// Split encodes a text and cuts it into segments. A text that fits one
// message (160 septets, 140 Latin-1 octets, 70 UTF-16 units) is one
// segment. A longer one is cut so that each part fits beside its
// concatenation header: 153/134/67 with the 6-octet header of an 8-bit
// reference, 152/132/66 with the 7-octet header of a 16-bit one. An escape
// sequence or a surrogate pair is never cut in two: a "€" that would start
// at septet 153 moves whole to the next part, so no part ends in a
// dangling escape and no handset shows a stray character. Measure and Count
// use the same planner, so their figures always agree with Split.
//
// For SMPP, a Segment's Payload is the short_message (set esm_class UDHI
// when it has a UDH), or, with ConcatSAR, its Data goes with the SAR TLVs
// taken from Number, Total and Reference. Encoding has gosmpp's
// data.Encoding methods, so a segment goes to gosmpp as
// msg.SetMessageDataWithEncoding(seg.Payload(), enc); gosmpp's own
// SubmitSM.Split is not needed (its GSM7 counting is wrong for extension
// characters).
//
// # Receiving
//
// ParseUDH splits a received short message into its header and text, and
// UDH.Concat says which part of which message it is. Decode the
// concatenation of all parts' data, not each part alone, so that a sender
// that did cut an escape or a surrogate pair is still read right. Decoding
// never panics: bytes that are not valid in their encoding are an error
// wrapping ErrInvalidData that says where.
//
// # PDU mode
//
// GSM modems in PDU mode carry GSM7 packed, eight septets in seven octets:
// PackSeptets and UnpackSeptets do that, after FillBits(len(udh)) bits of
// padding that align the text behind a user data header.
//
// National language shift tables (Turkish, Spanish, Portuguese, Indian
// languages) are not implemented: such text goes out as UCS-2.
package sms

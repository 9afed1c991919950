package sms_test

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

// Alphabets random texts are drawn from.
var (
	alphaGSM     = []rune("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà")
	alphaExt     = []rune("^{}\\[~]|€\f")
	alphaLatin1  = []rune("çÀÁÂÃÈÊËÌÍÎÏÐÒÓÔÕ×ÙÚÛÝÞáâãêëíîïðóôõ÷úûýþÿ`\u00a0«»©®°±µ¶·¸¹º¼½¾")
	alphaBMP     = []rune("жЖпривет中文字日本語한국어עבריתالعربيةΑβγ€™…‘’“”–—\u0301\u200d\ufeff\uffff")
	alphaAstral  = []rune("😀👍🏽🇳🇱🎉𝄞𠀀\U0010FFFF")
	allAlphabets = [][]rune{alphaGSM, alphaExt, alphaLatin1, alphaBMP, alphaAstral}
)

// randText is a random text whose characters come from a random mix of the
// alphabets, with lengths that often land near the segment boundaries.
type randText string

func (randText) Generate(r *rand.Rand, _ int) reflect.Value {
	var pool []rune
	for len(pool) == 0 {
		for _, a := range allAlphabets {
			if r.Intn(2) == 0 {
				pool = append(pool, a...)
			}
		}
	}
	// Mostly GSM so that long GSM7 texts are common too.
	gsmBias := r.Intn(3) == 0
	var n int
	switch r.Intn(4) {
	case 0:
		n = r.Intn(20)
	case 1:
		n = []int{66, 67, 70, 76, 80, 132, 134, 140, 152, 153, 160, 306, 459}[r.Intn(13)] + r.Intn(5) - 2
	default:
		n = r.Intn(700)
	}
	var b strings.Builder
	for range n {
		if gsmBias && r.Intn(10) > 0 {
			b.WriteRune(alphaGSM[r.Intn(len(alphaGSM))])
			continue
		}
		b.WriteRune(pool[r.Intn(len(pool))])
	}
	return reflect.ValueOf(randText(b.String()))
}

var methods = []sms.ConcatMethod{sms.ConcatUDH8, sms.ConcatUDH16, sms.ConcatSAR, sms.ConcatNone}

func TestSplitProperties(t *testing.T) {
	t.Parallel()

	cfg := &quick.Config{MaxCount: 400, Rand: rand.New(rand.NewSource(20240601))}
	prop := func(rt randText, mi uint8) bool {
		text := string(rt)
		m := methods[int(mi)%len(methods)]
		encs := []sms.Encoding{sms.Choose(text), sms.UCS2}
		if sms.Choose(text, sms.Latin1) == sms.Latin1 {
			encs = append(encs, sms.Latin1)
		}
		for _, enc := range encs {
			checkSplit(t, text, enc, sms.SplitOptions{Method: m, Reference: uint16(len(text))})
		}
		if m == sms.ConcatUDH8 {
			info, err := sms.Measure(text, sms.Choose(text), sms.SplitOptions{})
			if err == nil {
				require.Equal(t, info, sms.Count(text), "Count agrees with Measure")
			}
		}
		return !t.Failed()
	}
	require.NoError(t, quick.Check(prop, cfg))
}

// checkSplit splits text and checks everything a channel relies on.
func checkSplit(t *testing.T, text string, enc sms.Encoding, opts sms.SplitOptions) {
	t.Helper()

	segs, err := sms.Split(text, enc, opts)
	require.NoError(t, err, "split %.40q as %v", text, enc)
	require.NotEmpty(t, segs)

	single, multi := limitsOf(enc, opts.Method)
	var joined strings.Builder
	var data []byte
	sum := 0
	for i, s := range segs {
		require.Equal(t, i+1, s.Number)
		require.Equal(t, len(segs), s.Total)

		// Each segment decodes alone to its own text: no escape and no
		// surrogate pair was cut.
		alone, err := enc.Decode(s.Data)
		require.NoError(t, err, "segment %d of %.40q as %v decodes alone", s.Number, text, enc)
		require.Equal(t, s.Text, alone)
		if enc == sms.GSM7 && len(s.Data) > 0 {
			require.NotEqual(t, byte(0x1B), s.Data[len(s.Data)-1], "segment ends in an escape")
		}
		require.Equal(t, unitsOf(enc, s.Data), s.Units)

		limit := multi
		if len(segs) == 1 {
			limit = single
		}
		if limit > 0 {
			require.LessOrEqual(t, s.Units, limit, "segment %d over its limit", s.Number)
		}
		// Greedy: a part is cut only when the next character does not fit.
		if i+1 < len(segs) {
			next, _ := utf8.DecodeRuneInString(segs[i+1].Text)
			require.Greater(t, s.Units+runeUnits(enc, next), multi, "segment %d cut early", s.Number)
		}
		joined.WriteString(s.Text)
		data = append(data, s.Data...)
		sum += s.Units
	}
	require.Equal(t, text, joined.String())
	back, err := enc.Decode(data)
	require.NoError(t, err)
	require.Equal(t, text, back, "decode(concat(segments)) == text")

	info, err := sms.Measure(text, enc, opts)
	require.NoError(t, err)
	require.Equal(t, len(segs), info.Segments)
	require.Equal(t, sum, info.Units)
	require.Equal(t, enc, info.Encoding)
	if info.PerSegment > 0 {
		require.Equal(t, info.PerSegment-segs[len(segs)-1].Units, info.Remaining)
	}
}

func limitsOf(enc sms.Encoding, m sms.ConcatMethod) (single, multi int) {
	if m == sms.ConcatNone {
		return 0, 0
	}
	table := map[sms.Encoding][3]int{sms.GSM7: {160, 153, 152}, sms.Latin1: {140, 134, 132}, sms.UCS2: {70, 67, 66}}[enc]
	if m == sms.ConcatUDH16 {
		return table[0], table[2]
	}
	return table[0], table[1]
}

func unitsOf(enc sms.Encoding, data []byte) int {
	if enc == sms.UCS2 {
		return len(data) / 2
	}
	return len(data)
}

func runeUnits(enc sms.Encoding, r rune) int {
	b, err := enc.Encode(string(r))
	if err != nil {
		return 0
	}
	return unitsOf(enc, b)
}

func TestEncodeDecodeProperties(t *testing.T) {
	t.Parallel()

	cfg := &quick.Config{MaxCount: 500, Rand: rand.New(rand.NewSource(7))}
	prop := func(rt randText) bool {
		text := string(rt)
		for _, enc := range []sms.Encoding{sms.GSM7, sms.Latin1, sms.UCS2} {
			b, err := enc.Encode(text)
			if sms.Choose(text, enc) != enc {
				require.ErrorIs(t, err, sms.ErrUnencodable, "%v cannot hold %.40q", enc, text)
				continue
			}
			require.NoError(t, err)
			back, err := enc.Decode(b)
			require.NoError(t, err)
			require.Equal(t, text, back)
		}
		return !t.Failed()
	}
	require.NoError(t, quick.Check(prop, cfg))
}

func TestPackProperties(t *testing.T) {
	t.Parallel()

	cfg := &quick.Config{MaxCount: 500, Rand: rand.New(rand.NewSource(11))}
	prop := func(raw []byte, fill uint8) bool {
		septets := make([]byte, len(raw))
		for i, b := range raw {
			septets[i] = b & 0x7F
		}
		f := int(fill % 7)
		packed, err := sms.PackSeptets(septets, f)
		require.NoError(t, err)
		require.Len(t, packed, (f+7*len(septets)+7)/8)
		if f > 0 && len(packed) > 0 {
			require.Zero(t, packed[0]&(1<<f-1), "fill bits are zero")
		}
		back, err := sms.UnpackSeptets(packed, f, len(septets))
		require.NoError(t, err)
		require.Equal(t, septets, back)
		return !t.Failed()
	}
	require.NoError(t, quick.Check(prop, cfg))
}

func TestConcatUDHProperties(t *testing.T) {
	t.Parallel()

	prop := func(ref uint16, total, number uint8, wide bool) bool {
		c := sms.Concat{Reference: ref, Total: int(total), Number: int(number), Wide: wide}
		b, err := sms.ConcatUDH(c)
		if total == 0 || number == 0 || number > total {
			require.Error(t, err)
			return !t.Failed()
		}
		require.NoError(t, err)
		h, rest, err := sms.ParseUDH(append(b, 'x'))
		require.NoError(t, err)
		require.Equal(t, []byte("x"), rest)
		got, ok := h.Concat()
		require.True(t, ok)
		if !wide {
			c.Reference &= 0xFF
		}
		require.Equal(t, c, got)
		return !t.Failed()
	}
	require.NoError(t, quick.Check(prop, &quick.Config{MaxCount: 1000, Rand: rand.New(rand.NewSource(3))}))
}

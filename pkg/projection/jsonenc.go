package projection

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/miniray/miniray/pkg/events"
)

// The encoders in this file write what encoding/json writes for the same values,
// byte for byte, without reflection: the API's lists and task pages are made of
// thousands of small fields, and json.Marshal spent most of a page's time finding
// out, field by field, what it already knew. Anything outside the common case (a
// string that needs escaping, a number in exponent form, JSON with spaces) goes to
// encoding/json itself, so that the result is the same by construction; the tests
// compare both on the values that reach these paths.

// plainByte marks the bytes that encoding/json writes as they are in a string: not
// control characters, quotes, backslashes, <, > and & (which it escapes for HTML),
// nor bytes of UTF-8 sequences, which it checks.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string.
func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return appendMarshal(b, string(s))
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json writes a float64: the shortest decimal
// that reads back as f, in exponent form below 1e-6 and from 1e21 up. f must be
// finite.
func appendFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); a == 0 || a >= 1e-6 && a < 1e21 {
		return appendShortest(b, f)
	}
	return appendMarshal(b, f)
}

// appendShortest appends f as strconv.AppendFloat(b, f, 'f', -1, 64) does: the
// shortest decimal that reads back as f. Most numbers the API writes are times in
// Unix seconds to the microsecond, and durations; for those it writes the digits
// from an integer count of microseconds, which is several times faster than the
// general algorithm. Below 2^33 a float's spacing is under a microsecond, so when
// the count m read back as m/1e6 gives f, no decimal with fewer digits than m's can
// also give f, and m's digits are the shortest.
func appendShortest(b []byte, f float64) []byte {
	m := math.Round(f * 1e6)
	if math.Abs(f) >= 1<<33 || m/1e6 != f {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	if math.Signbit(f) {
		b = append(b, '-')
		m = -m
	}
	u := uint64(m)
	b = strconv.AppendUint(b, u/1e6, 10)
	if frac := u % 1e6; frac != 0 {
		b = append(b, '.')
		b = appendDigits(b, int64(frac), 6)
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b
}

// appendRaw appends JSON that was valid when it was stored, as encoding/json writes
// a json.RawMessage: compacted, with <, > and & escaped.
func appendRaw(b []byte, raw []byte) []byte {
	for _, c := range raw {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return appendMarshal(b, json.RawMessage(raw))
		}
	}
	return append(b, raw...)
}

// appendMarshal appends what json.Marshal makes of v. The values given to it always
// encode; should one not, nothing is appended but a null, which keeps the JSON
// valid.
func appendMarshal(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}

// appendKey appends a comma and a member name that needs no escaping, with its
// colon.
func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// appendTime appends a time and its _str twin under the two keys, as the summary
// of a task has them, leaving out a zero time. The layout and the range of valid
// timestamps give only digits and the characters "-T:.Z", which need no escaping.
func appendTime(b []byte, key, strKey string, ts float64) []byte {
	if ts == 0 {
		return b
	}
	b = appendKey(b, key)
	b = appendFloat(b, ts)
	b = appendKey(b, strKey)
	b = append(b, '"')
	b = appendTimeStr(b, ts)
	return append(b, '"')
}

// appendTimeStr appends a timestamp as events.FormatTime writes it, without the
// general formatter, which cost a fifth of a list page: in UTC, to the microsecond.
// Outside the years 2000 to 9999, which valid events never leave, it uses the
// general one.
func appendTimeStr(b []byte, ts float64) []byte {
	micros := int64(math.Round(ts * 1e6))
	if ts < events.MinTimestamp || ts > events.MaxTimestamp {
		return events.FromUnixSeconds(ts).AppendFormat(b, events.TimeLayout)
	}
	secs, frac := micros/1e6, micros%1e6
	days, rem := secs/86400, secs%86400

	// The civil date of a count of days since 1970-01-01, in the proleptic
	// Gregorian calendar, by eras of 400 years that start on March 1st.
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	year := yoe + era*400
	if month > 12 {
		month -= 12
		year++
	}

	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, month, 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, rem/3600, 2)
	b = append(b, ':')
	b = appendDigits(b, rem/60%60, 2)
	b = append(b, ':')
	b = appendDigits(b, rem%60, 2)
	b = append(b, '.')
	b = appendDigits(b, frac, 6)
	return append(b, 'Z')
}

// appendDigits appends v, not negative, in exactly n decimal digits.
func appendDigits(b []byte, v int64, n int) []byte {
	b = append(b, "000000"[:n]...)
	for i := len(b) - 1; n > 0; i, n = i-1, n-1 {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// appendMetric appends a metric's value as events.Metrics encodes it: a number, or
// one of the strings "NaN", "+Inf" and "-Inf".
func appendMetric(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendValue(b, f)
	}
	return appendFloat(b, f)
}

// appendJSON appends the attempt as json.Marshal encodes it; a non-empty msg
// stands for its error text.
func (a *Attempt) appendJSON(b []byte, msg []byte) []byte {
	b = append(b, `{"attempt":`...)
	b = appendString(b, a.Attempt)
	b = append(b, `,"number":`...)
	b = strconv.AppendInt(b, int64(a.Number), 10)
	b = append(b, `,"status":`...)
	b = appendString(b, string(a.Status))
	if a.StartedAt != 0 {
		b = append(b, `,"started_at":`...)
		b = appendFloat(b, a.StartedAt)
	}
	if a.FinishedAt != 0 {
		b = append(b, `,"finished_at":`...)
		b = appendFloat(b, a.FinishedAt)
	}
	switch {
	case len(msg) > 0:
		b = append(b, `,"error":`...)
		b = appendString(b, msg)
	case a.Error != "":
		b = append(b, `,"error":`...)
		b = appendString(b, a.Error)
	}
	return append(b, '}')
}

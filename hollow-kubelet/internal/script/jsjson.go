package script

// A small JSON layer that behaves like JavaScript's JSON.parse/JSON.stringify
// where the simulator's parser depends on it: numbers are float64, objects
// keep their keys in JavaScript's own order (integer-like keys first,
// ascending, then the rest in insertion order; a repeated key keeps its first
// position and its last value), and values are rendered in error messages as
// JSON.stringify would render them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// object is a decoded JSON object with JavaScript's key order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

func (o *object) has(k string) bool {
	_, ok := o.vals[k]
	return ok
}

// jsNull is JSON null (Go nil means "absent" nowhere in this package: absence
// is tested with object.get).
type jsNull struct{}

func parseJSON(raw string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	// Anything left that is not whitespace is an error, as in JSON.parse.
	rest := raw[dec.InputOffset():]
	if strings.TrimLeft(rest, " \t\r\n") != "" {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("expected a property name")
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := o.vals[k]; !seen {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			orderKeys(o.keys)
			return o, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			// JSON.parse turns numbers beyond float64 range into ±Infinity.
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return f, nil
			}
			return nil, err
		}
		return f, nil
	case string:
		return t, nil
	case bool:
		return t, nil
	case nil:
		return jsNull{}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// isArrayIndex: a canonical array index ("0", "17"; not "01", not >= 2^32-1),
// which JavaScript lists before all other keys, in ascending order.
func isArrayIndex(k string) bool {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	return err == nil && n < math.MaxUint32
}

func orderKeys(keys []string) {
	sort.SliceStable(keys, func(i, j int) bool {
		ai, aj := isArrayIndex(keys[i]), isArrayIndex(keys[j])
		if ai && aj {
			a, _ := strconv.ParseUint(keys[i], 10, 64)
			b, _ := strconv.ParseUint(keys[j], 10, 64)
			return a < b
		}
		return ai && !aj
	})
}

// jsNumber formats a float64 as JavaScript's Number#toString does.
func jsNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null" // what JSON.stringify writes for them
	}
	if f == 0 {
		return "0"
	}
	a := math.Abs(f)
	if a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+21, 1.5e-07
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	if exp == "" {
		exp = "0"
	}
	return mant + "e" + string(sign) + exp
}

func jsQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// stringify renders a decoded value as JSON.stringify(v) does (compact).
func stringify(v any) string {
	var b bytes.Buffer
	writeJS(&b, v)
	return b.String()
}

func writeJS(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case jsNull:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case float64:
		b.WriteString(jsNumber(t))
	case string:
		b.WriteString(jsQuote(t))
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJS(b, e)
		}
		b.WriteByte(']')
	case *object:
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsQuote(k))
			b.WriteByte(':')
			writeJS(b, t.vals[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString("undefined")
	}
}

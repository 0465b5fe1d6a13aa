package guest

import (
	"strconv"
	"strings"
)

// Observation is the answer to the observe op (ABI.md "observe"): the
// credential's standing as the headers tell it and one Window per limit.
type Observation struct {
	Status  string // "", allowed, warning or rejected
	ResetAt int64  // epoch ms when a rejected status lifts; 0: unknown
	Windows []Window
	// Scope is what the limits count: ScopeModel when the provider keeps
	// them per model (or model class), so that they hold for requests for
	// the answer's model only; "" when they are the whole credential's.
	Scope string
}

// ScopeModel is Observation.Scope for limits the provider keeps per model.
const ScopeModel = "model"

// Window is one limit; Limit, Remaining and ResetAt are -1 and
// Utilization is negative when unknown.
type Window struct {
	Name             string
	Limit, Remaining int64
	ResetAt          int64
	Utilization      float64
}

// NewWindow is a Window named name with every field unknown.
func NewWindow(name string) Window {
	return Window{Name: name, Limit: -1, Remaining: -1, ResetAt: -1, Utilization: -1}
}

// Windows collects windows by name in first-seen order.
type Windows struct{ list []Window }

// Get returns the window called name, adding it if new.
func (ws *Windows) Get(name string) *Window {
	for i := range ws.list {
		if ws.list[i].Name == name {
			return &ws.list[i]
		}
	}
	ws.list = append(ws.list, NewWindow(name))
	return &ws.list[len(ws.list)-1]
}

// List is the windows collected, by name: headers come from a map, and
// the answer should not depend on its order.
func (ws *Windows) List() []Window {
	l := ws.list
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Name < l[j-1].Name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l
}

// Count parses a non-negative integer header value; -1 when it is not one.
func Count(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Fraction parses a number; negative when it is not one.
func Fraction(v string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 {
		return -1
	}
	return f
}

// RFC3339Ms parses an RFC 3339 time ("2027-01-15T08:00:01Z", with
// optional fraction and offset) into epoch ms; -1 when it is not one.
// Hand-written: the time package adds a quarter of a megabyte to every
// module, and slower compiles at start.
func RFC3339Ms(v string) int64 {
	v = strings.TrimSpace(v)
	if len(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' && v[10] != 't' && v[10] != ' ' || v[13] != ':' || v[16] != ':' {
		return -1
	}
	num := func(s string) int64 {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return -1
		}
		return int64(n)
	}
	y, mo, d, h, mi, sec := num(v[0:4]), num(v[5:7]), num(v[8:10]), num(v[11:13]), num(v[14:16]), num(v[17:19])
	if y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0 {
		return -1
	}
	rest, ms := v[19:], int64(0)
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if i <= 3 {
				ms = ms*10 + int64(rest[i]-'0')
			}
			i++
		}
		for k := i; k <= 3; k++ {
			ms *= 10
		}
		rest = rest[i:]
	}
	var off int64
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, om := num(rest[1:3]), num(rest[4:6])
		if oh < 0 || om < 0 {
			return -1
		}
		if off = (oh*60 + om) * 60; rest[0] == '-' {
			off = -off
		}
	default:
		return -1
	}
	return ((daysSinceEpoch(y, mo, d)*24+h)*3600+mi*60+sec-off)*1000 + ms
}

// daysSinceEpoch is the days from 1970-01-01 to y-m-d (proleptic
// Gregorian; Howard Hinnant's days_from_civil).
func daysSinceEpoch(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// EpochMs reads epoch seconds or milliseconds (a value past year 33658 in
// seconds is taken as ms); -1 when it is not a number.
func EpochMs(v string) int64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 {
		return -1
	}
	if f >= 1e12 {
		return int64(f)
	}
	return int64(f * 1000)
}

// AfterMs is now plus a Go-style duration ("6m0s", "1.5s", "20ms",
// "1h2m"); -1 when v is not one.
func AfterMs(v string, now int64) int64 {
	v = strings.TrimSpace(v)
	if v == "" || now <= 0 {
		return -1
	}
	var total float64
	for v != "" {
		i := 0
		for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
			i++
		}
		n, err := strconv.ParseFloat(v[:i], 64)
		if err != nil {
			return -1
		}
		j := i
		for j < len(v) && !(v[j] >= '0' && v[j] <= '9' || v[j] == '.') {
			j++
		}
		unit, ok := durationUnits[v[i:j]]
		if !ok {
			return -1
		}
		total += n * unit
		v = v[j:]
	}
	return now + int64(total)
}

// durationUnits are Go's duration units in ms.
var durationUnits = map[string]float64{"h": 3600e3, "m": 60e3, "s": 1e3, "ms": 1, "us": 1e-3, "µs": 1e-3, "ns": 1e-6}

func encodeObservation(o Observation) []byte {
	w := NewObject().Bool("ok", true).String("status", o.Status)
	if o.Scope != "" {
		w.String("scope", o.Scope) // ABI 1 revision 6; older hosts ignore it
	}
	if o.ResetAt > 0 {
		w.Int("resetAt", &o.ResetAt)
	} else {
		w.Int("resetAt", nil)
	}
	w.key("windows")
	w.b = append(w.b, '[')
	for i, win := range o.Windows {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, '{')
		w.first = append(w.first, true)
		w.String("name", win.Name).Int("limit", known(win.Limit)).Int("remaining", known(win.Remaining)).
			Int("resetAt", known(win.ResetAt))
		w.key("utilization")
		if win.Utilization >= 0 {
			w.b = strconv.AppendFloat(w.b, win.Utilization, 'g', 6, 64)
		} else {
			w.b = append(w.b, "null"...)
		}
		w.Close()
	}
	w.b = append(w.b, ']')
	return w.Bytes()
}

func known(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}

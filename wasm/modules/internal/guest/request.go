package guest

import "strconv"

// decodeRequest reads an ABI request straight into a Request: Go on wasm
// is slow at maps, and building a map[string]any per call cost most of a
// call's time. Unknown keys are skipped; v is the "v" field.
func decodeRequest(b []byte) (r Request, v int, err error) {
	p := parser{b: b}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return r, 0, errSyntax
	}
	p.i++
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return r, 0, p.end()
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return r, 0, errSyntax
		}
		key, err := p.str()
		if err != nil {
			return r, 0, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return r, 0, errSyntax
		}
		p.i++
		p.space()
		if err := p.field(&r, &v, key); err != nil {
			return r, 0, err
		}
		p.space()
		if p.i >= len(p.b) {
			return r, 0, errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return r, v, p.end()
		default:
			return r, 0, errSyntax
		}
	}
}

func (p *parser) end() error {
	p.space()
	if p.i != len(p.b) {
		return errSyntax
	}
	return nil
}

func (p *parser) field(r *Request, v *int, key string) error {
	var dst *string
	switch key {
	case "op":
		dst = &r.Op
	case "type":
		dst = &r.Type
	case "secret":
		dst = &r.Secret
	case "accountId":
		dst = &r.AccountID
	case "body":
		dst = &r.Body
	case "v", "now", "status", "expiresAt":
		return p.intField(r, v, key)
	case "headers":
		return p.headers(r)
	}
	if dst != nil && p.i < len(p.b) && p.b[p.i] == '"' {
		s, err := p.str()
		*dst = s
		return err
	}
	_, err := p.value(0) // anything else, or a field of an unexpected type
	return err
}

func (p *parser) intField(r *Request, v *int, key string) error {
	if p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] >= '0' && p.b[p.i] <= '9') {
		start := p.i
		if _, err := p.number(); err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
		if err != nil { // a fraction or exponent: take the float
			f, _ := strconv.ParseFloat(string(p.b[start:p.i]), 64)
			n = int64(f)
		}
		switch key {
		case "v":
			*v = int(n)
		case "now":
			r.Now = n
		case "status":
			r.Status = int(n)
		case "expiresAt":
			r.ExpiresAt = &n
		}
		return nil
	}
	_, err := p.value(0)
	return err
}

func (p *parser) headers(r *Request) error {
	val, err := p.value(0)
	if err != nil {
		return err
	}
	m, ok := val.(map[string]any)
	if !ok {
		return nil
	}
	r.Headers = make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			r.Headers[lower(k)] = s
		}
	}
	return nil
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

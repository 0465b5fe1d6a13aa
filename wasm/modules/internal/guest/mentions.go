package guest

// mentionWindow is how much of an upstream body Mentions reads. Provider
// error bodies are small JSON with the message near the start; a long body
// is an HTML page from a proxy, where the status says enough. Scanning all
// 8 KiB the host sends cost milliseconds per classify (every loop
// iteration is a host call under the deadline).
const mentionWindow = 4 << 10

var lowerTab [256]byte

func init() {
	for c := range 256 {
		lowerTab[c] = byte(c)
		if c >= 'A' && c <= 'Z' {
			lowerTab[c] = byte(c + 'a' - 'A')
		}
	}
}

// Mentions reports whether the start of the body contains any of the
// phrases (given in lower case), ignoring ASCII case.
func (r *Request) Mentions(phrases ...string) bool {
	if r.lowerBody == "" && r.Body != "" {
		r.lowerBody = lowerASCII(r.Body[:min(len(r.Body), mentionWindow)])
	}
	for _, p := range phrases {
		if contains(r.lowerBody, p) {
			return true
		}
	}
	return false
}

// lowerASCII lowers A-Z, eight bytes per iteration.
func lowerASCII(s string) string {
	b := make([]byte, len(s))
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w, d := s[i:i+8], b[i:i+8:i+8]
		d[0], d[1], d[2], d[3] = lowerTab[w[0]], lowerTab[w[1]], lowerTab[w[2]], lowerTab[w[3]]
		d[4], d[5], d[6], d[7] = lowerTab[w[4]], lowerTab[w[5]], lowerTab[w[6]], lowerTab[w[7]]
	}
	for ; i < len(s); i++ {
		b[i] = lowerTab[s[i]]
	}
	return string(b)
}

// contains is strings.Contains that looks for the phrase's first byte
// eight positions per iteration.
func contains(h, p string) bool {
	if p == "" {
		return true
	}
	c, n := p[0], len(h)-len(p) // candidates start at 0..n
	i := 0
	for ; i+7 <= n; i += 8 {
		w := h[i : i+8]
		if w[0] != c && w[1] != c && w[2] != c && w[3] != c && w[4] != c && w[5] != c && w[6] != c && w[7] != c {
			continue
		}
		for j := i; j < i+8; j++ {
			if h[j] == c && h[j:j+len(p)] == p {
				return true
			}
		}
	}
	for ; i <= n; i++ {
		if h[i] == c && h[i:i+len(p)] == p {
			return true
		}
	}
	return false
}

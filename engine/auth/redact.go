package auth

import "regexp"

var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`),
	regexp.MustCompile(`(?i)"?\b(access_token|refresh_token|client_secret|code|password|token)\b"?\s*[:=]\s*"?[^"&\s,}]+`),
}

// Redact replaces anything in s that looks like a credential (an
// Authorization value, a token or secret parameter) with "[redacted]"; for
// messages built from third-party errors before they are logged or returned.
func Redact(s string) string {
	for _, re := range secretPatterns {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			sub := re.FindStringSubmatch(m)
			return sub[1] + " [redacted]"
		})
	}
	return s
}

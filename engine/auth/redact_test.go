package auth_test

import (
	"testing"

	"github.com/ghlflow/ghlflow/engine/auth"
)

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Authorization: Bearer sim_at_123abc", "Authorization: Bearer [redacted]"},
		{"basic cnJwdWI6cnJwcml2", "basic [redacted]"},
		{`{"access_token":"abc","statusCode":400}`, `{access_token [redacted]","statusCode":400}`},
		{"refresh_token=xyz&grant_type=refresh_token", "refresh_token [redacted]&grant_type=refresh_token"},
		{"statusCode: 400, message: bad", "statusCode: 400, message: bad"},
	}
	for _, tc := range cases {
		if got := auth.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if s := (auth.Credential{AccessToken: "secret-1"}).String(); s != "[credential redacted]" {
		t.Fatalf("Credential.String: %s", s)
	}
}

package sim_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/ghlflow/ghlflow/catalog/sim"
	"golang.org/x/oauth2"
)

// TestOAuth2Library runs the install and a refresh with golang.org/x/oauth2,
// as a Go client of the real API would.
func TestOAuth2Library(t *testing.T) {
	e := newEnv(t, sim.Config{})
	conf := &oauth2.Config{ClientID: "sim-client", ClientSecret: "sim-secret", RedirectURL: "http://127.0.0.1:1/cb",
		Scopes:   []string{"contacts.readonly"},
		Endpoint: oauth2.Endpoint{AuthURL: e.ts.URL + "/oauth/chooselocation", TokenURL: e.ts.URL + "/oauth/token"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(conf.AuthCodeURL("st") + "&location_id=" + e.loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(resp.Header.Get("Location"))
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.ts.Client())
	tok, err := conf.Exchange(ctx, u.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("locationId") != e.loc || tok.RefreshToken == "" {
		t.Fatalf("token: %+v", tok)
	}
	old := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
	fresh, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.RefreshToken == old || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", fresh)
	}
	stale := &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Minute)}
	if _, err := conf.TokenSource(ctx, stale).Token(); err == nil {
		t.Fatal("spent refresh token accepted")
	}
}

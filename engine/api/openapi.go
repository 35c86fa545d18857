package api

import "net/http"

func (a *API) openapi(w http.ResponseWriter, r *http.Request) {}

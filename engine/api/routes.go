package api

import "net/http"

// table is every route of the API.
func (a *API) table() []Route {
	ok, created, accepted, gone := http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent
	b := Base
	return []Route{
		{"GET", b + "/tenants", "List tenants", true, ok, "TenantList", "", a.listTenants},
		{"POST", b + "/tenants", "Create a tenant", false, created, "Tenant", "TenantCreate", a.createTenant},
		{"GET", b + "/tenants/{id}", "Get a tenant", true, ok, "Tenant", "", a.getTenant},
		{"PATCH", b + "/tenants/{id}", "Change a tenant's name, labels, status or connections", false, ok, "Tenant", "TenantPatch", a.patchTenant},
		{"DELETE", b + "/tenants/{id}", "Delete a tenant and all of its state", false, ok, "TenantRemoved", "", a.deleteTenant},
		{"GET", b + "/tenants/{id}/connections", "List a tenant's connections with their status", true, ok, "ConnectionList", "", a.listConnections},
		{"POST", b + "/tenants/{id}/connections", "Store a token or basic keys for a role, sealed", true, created, "Connection", "ConnectionCreate", a.createConnection},
		{"POST", b + "/tenants/{id}/connections:install", "Make an OAuth install link for a role", true, created, "InstallLink", "InstallCreate", a.installLink},
		{"DELETE", b + "/tenants/{id}/connections/{role}", "Delete a tenant's connection of a role", true, gone, "", "", a.deleteConnection},
		{"GET", b + "/tenants/{id}/keys", "List a tenant's API keys", true, ok, "KeyList", "", a.listKeys},
		{"POST", b + "/tenants/{id}/keys", "Create a tenant API key (shown once)", true, created, "NewKey", "KeyCreate", a.createKey},
		{"DELETE", b + "/tenants/{id}/keys/{key}", "Revoke a tenant API key", true, gone, "", "", a.revokeKey},
		{"GET", b + "/recipes", "List recipes with their status", true, ok, "RecipeList", "", a.listRecipes},
		{"POST", b + "/recipes:lint", "Validate a recipe without storing it", true, ok, "Lint", "", a.lintRecipe},
		{"GET", b + "/recipes/{name}", "Get a recipe", true, ok, "Recipe", "", a.getRecipe},
		{"PUT", b + "/recipes/{name}", "Store a recipe (validated; 422 lists every problem)", false, ok, "Recipe", "", a.putRecipe},
		{"DELETE", b + "/recipes/{name}", "Delete a stored recipe", false, gone, "", "", a.deleteRecipe},
		{"GET", b + "/subscriptions", "List subscriptions (filters: tenant, recipe, status)", true, ok, "SubscriptionList", "", a.listSubs},
		{"GET", b + "/subscriptions/{id}", "Get a subscription: polls, next due, cursor, counters, last error", true, ok, "SubscriptionDetail", "", a.getSub},
		{"POST", b + "/subscriptions/{id}/pause", "Pause a subscription's polls", true, ok, "Subscription", "", a.pauseSub},
		{"POST", b + "/subscriptions/{id}/resume", "Resume a subscription's polls", true, ok, "Subscription", "", a.resumeSub},
		{"POST", b + "/subscriptions/{id}/test", "Run the trigger once; up to 10 sample items, nothing fired or marked", true, ok, "Sample", "", a.testSub},
		{"POST", b + "/subscriptions/{id}/replay", "Fire one item's chain again", true, accepted, "Replay", "ReplayRequest", a.replaySub},
		{"GET", b + "/runs", "List recent chain runs (filters: subscription, status)", true, ok, "RunList", "", a.listRuns},
		{"GET", b + "/runs/{id}", "Get a chain run with each step's input, output, error and duration", true, ok, "Run", "", a.getRun},
		{"GET", b + "/openapi.json", "This document", true, ok, "", "", a.openapi},
		{"POST", b + "/runs/{id}/retry", "Retry an archived (failed) run", true, accepted, "Replay", "", a.retryRun},
	}
}

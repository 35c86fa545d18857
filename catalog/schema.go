package catalog

import "fmt"

// RecipeSchema returns a JSON Schema (draft 2020-12) for recipe files, built
// from the catalog: editors that read it (VS Code with the YAML extension,
// via a "# yaml-language-server: $schema=..." line) complete operation ids
// and their inputs and flag unknown fields.
func (c *Catalog) RecipeSchema() map[string]any {
	var triggers, actions []any
	var conds []any
	for _, op := range c.Ops() {
		if op.Kind == KindTrigger {
			triggers = append(triggers, op.ID)
		} else {
			actions = append(actions, op.ID)
		}
		props := map[string]any{}
		for _, in := range op.Inputs {
			p := map[string]any{"description": fmt.Sprintf("%s (%s, in %s)", in.Description, in.Type, in.In)}
			if len(in.Enum) > 0 {
				enum := make([]any, len(in.Enum))
				for i, e := range in.Enum {
					enum[i] = e
				}
				p["anyOf"] = []any{map[string]any{"enum": enum}, map[string]any{"type": "string", "pattern": "\\{\\{"}}
			}
			props[in.Name] = p
		}
		field := "input"
		if op.Kind == KindTrigger {
			field = "params"
		}
		conds = append(conds, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"op": map[string]any{"const": op.ID}}, "required": []any{"op"}},
			"then": map[string]any{"properties": map[string]any{field: map[string]any{"type": "object", "properties": props, "additionalProperties": false}}},
		})
	}
	inputs := map[string]any{"type": "object", "description": "inputs of the operation; strings may use Go templates over .trigger and .steps.N"}
	trigger := map[string]any{
		"type":                 "object",
		"required":             []any{"op", "connection", "every"},
		"additionalProperties": false,
		"properties": map[string]any{
			"op":         map[string]any{"enum": triggers, "description": "a trigger operation id"},
			"connection": map[string]any{"type": "string", "description": "the connection to poll with"},
			"every":      map[string]any{"type": "string", "pattern": "^([1-9]|1[0-5])m$|^([6-9][0-9]|[1-8][0-9]{2}|900)s$", "description": "polling interval, 1m to 15m"},
			"params":     inputs,
			"dedup":      map[string]any{"enum": []any{DedupID, DedupUpdated, DedupCursor, DedupChanged}},
			"backfill":   map[string]any{"type": "integer", "minimum": 0, "description": "existing items the first poll fires (0 = none)"},
			"max_pages":  map[string]any{"type": "integer", "minimum": 0},
			"instant":    map[string]any{"type": "boolean", "description": "also fire on the operation's webhook events as they arrive"},
		},
		"allOf": filterConds(conds, triggers),
	}
	step := map[string]any{
		"type":                 "object",
		"required":             []any{"op"},
		"additionalProperties": false,
		"properties": map[string]any{
			"name":       map[string]any{"type": "string"},
			"op":         map[string]any{"enum": actions, "description": "an action operation id"},
			"connection": map[string]any{"type": "string"},
			"input":      inputs,
		},
		"allOf": filterConds(conds, actions),
	}
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://ghlflow.dev/schema/recipe.json",
		"title":                "ghlflow recipe",
		"type":                 "object",
		"required":             []any{"name", "trigger", "steps"},
		"additionalProperties": false,
		"properties": map[string]any{
			"name":        map[string]any{"type": "string", "pattern": recipeNameRe.String()},
			"description": map[string]any{"type": "string"},
			"trigger":     trigger,
			"filter":      map[string]any{"type": "string", "description": "a template that renders true for items to act on"},
			"steps":       map[string]any{"type": "array", "minItems": 1, "items": step},
		},
	}
}

// filterConds keeps the if/then conditions of the given operation ids.
func filterConds(conds []any, ids []any) []any {
	want := map[any]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []any
	for _, c := range conds {
		id := c.(map[string]any)["if"].(map[string]any)["properties"].(map[string]any)["op"].(map[string]any)["const"]
		if want[id] {
			out = append(out, c)
		}
	}
	return out
}

package catalog

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// durationPattern matches the durations the loader reads (Go's syntax:
// 90s, 5m, 1m30s); the loader also checks the range.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

// templatePattern matches text holding a template, which is checked when
// it renders rather than here.
const templatePattern = `\{\{`

// RecipeSchema returns a JSON Schema (draft 2020-12) for recipe files,
// generated from the loader's description of them (recipeFile) and the
// catalog's operations and inputs: editors that read it (VS Code with the
// YAML extension, via a "# yaml-language-server: $schema=..." line)
// complete operation ids and their inputs and flag unknown fields. Whatever
// the loader accepts the schema accepts; the loader checks more (intervals,
// templates, connections, step references).
func (c *Catalog) RecipeSchema() map[string]any {
	var triggers, actions []any
	var triggerConds, actionConds []any
	for _, op := range c.Ops() {
		field := "input"
		if op.Kind == KindTrigger {
			field = "params"
		}
		cond := map[string]any{
			"if":   map[string]any{"properties": map[string]any{"op": map[string]any{"const": op.ID}}, "required": []any{"op"}},
			"then": map[string]any{"properties": map[string]any{field: inputsSchema(op)}},
		}
		if op.Kind == KindTrigger {
			triggers, triggerConds = append(triggers, op.ID), append(triggerConds, cond)
		} else {
			actions, actionConds = append(actions, op.ID), append(actionConds, cond)
		}
	}
	extra := map[string]map[string]any{
		"name":          {"pattern": recipeNameRe.String()},
		"trigger":       {"allOf": triggerConds},
		"trigger.op":    {"enum": triggers},
		"trigger.every": {"pattern": durationPattern},
		"trigger.dedup": {"enum": toAny(dedups)},
		"steps.item.op": {"enum": actions},
		"steps.item":    {"allOf": actionConds},
	}
	used := map[string]bool{}
	s := typeSchema(reflect.TypeFor[recipeFile](), "", extra, used)
	for path := range extra {
		if !used[path] {
			panic("catalog: the recipe schema has no field " + path)
		}
	}
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://ghlflow.dev/schema/recipe.json"
	s["title"] = "ghlflow recipe"
	return s
}

// typeSchema is the schema of values of t at path (dotted yaml names;
// "steps.item" for the elements of steps), merged with extra[path]; used
// records the paths of extra that were met.
func typeSchema(t reflect.Type, path string, extra map[string]map[string]any, used map[string]bool) map[string]any {
	var s map[string]any
	switch {
	case t == reflect.TypeFor[Duration]():
		s = map[string]any{"type": "string"}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		var required []any
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := typeSchema(f.Type, strings.TrimPrefix(path+"."+name, "."), extra, used)
			if d := f.Tag.Get("doc"); d != "" {
				p["description"] = d
			}
			if m := f.Tag.Get("minimum"); m != "" {
				n, _ := strconv.Atoi(m)
				if f.Type.Kind() == reflect.Slice {
					p["minItems"] = n
				} else {
					p["minimum"] = n
				}
			}
			if f.Tag.Get("required") == "true" {
				required = append(required, name)
			}
			props[name] = p
		}
		s = map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
	case t.Kind() == reflect.Slice:
		s = map[string]any{"type": "array", "items": typeSchema(t.Elem(), path+".item", extra, used)}
	case t.Kind() == reflect.Map:
		s = map[string]any{"type": "object"}
	case t.Kind() == reflect.String:
		s = map[string]any{"type": "string"}
	case t.Kind() == reflect.Int:
		s = map[string]any{"type": "integer"}
	case t.Kind() == reflect.Bool:
		s = map[string]any{"type": "boolean"}
	default:
		panic(fmt.Sprintf("catalog: no schema for %s at %s", t, path))
	}
	if x, ok := extra[path]; ok {
		for k, v := range x {
			s[k] = v
		}
		used[path] = true
	}
	return s
}

// inputsSchema is the schema of op's inputs as a recipe writes them: the
// values the loader's literal checks accept, or templates.
func inputsSchema(op *Operation) map[string]any {
	props := map[string]any{}
	for _, in := range op.Inputs {
		p := map[string]any{"description": strings.TrimSpace(fmt.Sprintf("%s (%s, in %s)", in.Description, in.Type, in.In))}
		switch in.Type {
		case "string", "datetime", "date":
			p["type"] = []any{"string", "number", "integer", "boolean", "null"}
		case "number", "integer":
			p["type"] = []any{"number", "string", "null"}
		case "boolean":
			p["type"] = []any{"boolean", "string", "null"}
		case "array":
			p["type"] = []any{"array", "string", "null"}
		case "object":
			p["type"] = []any{"object", "string", "null"}
		}
		if m := maxOf(op, &in); m > 0 {
			p["maximum"] = m
		}
		if len(in.Enum) > 0 {
			p["anyOf"] = []any{map[string]any{"enum": toAny(in.Enum)}, map[string]any{"type": "string", "pattern": templatePattern}}
		}
		props[in.Name] = p
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

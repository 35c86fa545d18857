package api

import (
	"errors"
	"io"
	"net/http"
	"sort"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/apikey"
	"github.com/ghlflow/ghlflow/engine/recipestore"
)

// RecipeView is a recipe as the API shows it.
type RecipeView struct {
	Name string `json:"name"`
	// Source is "stored" (through the API or the CLI) or the file it is
	// read from.
	Source string `json:"source"`
	// Status is valid or invalid (a stored recipe the catalog no longer
	// accepts).
	Status        string    `json:"status"`
	Trigger       string    `json:"trigger,omitempty"`
	Every         string    `json:"every,omitempty"`
	Steps         []string  `json:"steps"`
	Subscriptions int       `json:"subscriptions"`
	Problems      []Problem `json:"problems,omitempty"`
	// Text is a stored recipe's YAML.
	Text string `json:"text,omitempty"`
}

func (a *API) recipeView(source string, r *catalog.Recipe, err error) RecipeView {
	v := RecipeView{Source: source, Status: "valid", Steps: []string{}}
	if err != nil {
		v.Status, v.Problems = "invalid", problems(err)
		return v
	}
	v.Name, v.Trigger, v.Every = r.Name, r.Trigger.Op, r.Trigger.Every.String()
	for _, st := range r.Steps {
		v.Steps = append(v.Steps, st.Op)
	}
	for _, s := range a.cfg.Subscriptions.All() {
		if s.Recipe.Name == r.Name {
			v.Subscriptions++
		}
	}
	return v
}

// problems turns a recipe's load error into its problems.
func problems(err error) []Problem {
	var es catalog.Errors
	if errors.As(err, &es) {
		out := make([]Problem, len(es))
		for i, e := range es {
			out[i] = Problem{Line: e.Line, Col: e.Col, Message: e.Msg, Fix: e.Fix}
		}
		return out
	}
	var e *catalog.Error
	if errors.As(err, &e) {
		return []Problem{{Line: e.Line, Col: e.Col, Message: e.Msg, Fix: e.Fix}}
	}
	return []Problem{{Message: err.Error()}}
}

// allRecipes returns every recipe, file ones first, then stored ones.
func (a *API) allRecipes(r *http.Request) ([]RecipeView, map[string][]byte, error) {
	loader := &catalog.RecipeLoader{Catalog: a.cfg.Catalog}
	var out []RecipeView
	if len(a.cfg.RecipeFiles) > 0 {
		rs, err := loader.Load(a.cfg.RecipeFiles...)
		if err != nil {
			out = append(out, a.recipeView("files", nil, err))
		}
		for _, rc := range rs {
			out = append(out, a.recipeView(rc.File, rc, nil))
		}
	}
	names, texts, err := a.recipes.All(r.Context())
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		rc, err := loader.Parse(recipestore.Source(name), texts[name])
		v := a.recipeView("stored", rc, err)
		v.Name = name
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, texts, nil
}

func (a *API) listRecipes(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	all, _, err := a.allRecipes(r)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if l, ok := page(w, r, all); ok {
		writeJSON(w, http.StatusOK, l)
	}
}

func (a *API) findRecipe(w http.ResponseWriter, r *http.Request, name string) (RecipeView, bool) {
	all, texts, err := a.allRecipes(r)
	if err != nil {
		a.internal(w, r, err)
		return RecipeView{}, false
	}
	for _, v := range all {
		if v.Name == name {
			if v.Source == "stored" {
				v.Text = string(texts[name])
			}
			return v, true
		}
	}
	notFound(w, "recipe", name)
	return RecipeView{}, false
}

func (a *API) getRecipe(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	if v, ok := a.findRecipe(w, r, r.PathValue("name")); ok {
		writeJSON(w, http.StatusOK, v)
	}
}

// readRecipe reads a recipe's YAML body and checks it; on a problem it
// answers 422 with every problem and returns false.
func (a *API) readRecipe(w http.ResponseWriter, r *http.Request, source string) (*catalog.Recipe, []byte, bool) {
	text, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is over 1 MB", "")
			return nil, nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_body", err.Error(), "")
		return nil, nil, false
	}
	loader := &catalog.RecipeLoader{Catalog: a.cfg.Catalog}
	rc, err := loader.Parse(source, text)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: ErrorInfo{Code: "invalid_recipe",
			Message: "the recipe has problems; each is listed with its line:col", Field: "body"}, Problems: problems(err)})
		return nil, nil, false
	}
	return rc, text, true
}

// Lint is the answer of a recipe that passes the checks.
type Lint struct {
	Valid  bool       `json:"valid"`
	Recipe RecipeView `json:"recipe"`
}

func (a *API) lintRecipe(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	rc, _, ok := a.readRecipe(w, r, "body")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, Lint{Valid: true, Recipe: a.recipeView("body", rc, nil)})
}

func (a *API) putRecipe(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	name := r.PathValue("name")
	rc, text, ok := a.readRecipe(w, r, recipestore.Source(name))
	if !ok {
		return
	}
	if rc.Name != name {
		writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: ErrorInfo{Code: "name_mismatch",
			Message: "the recipe is named " + rc.Name + ", the path " + name, Field: "name"},
			Problems: []Problem{{Line: rc.Line, Col: 7, Message: "name must be " + name}}})
		return
	}
	all, _, err := a.allRecipes(r)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	for _, v := range all {
		if v.Name == name && v.Source != "stored" {
			writeError(w, http.StatusConflict, "file_recipe", "recipe "+name+" is read from "+v.Source+"; a stored one cannot replace it", "name")
			return
		}
	}
	if err := a.recipes.Put(r.Context(), name, text); err != nil {
		a.internal(w, r, err)
		return
	}
	v := a.recipeView("stored", rc, nil)
	v.Text = string(text)
	writeJSON(w, http.StatusOK, v)
}

func (a *API) deleteRecipe(w http.ResponseWriter, r *http.Request, _ apikey.Key) {
	name := r.PathValue("name")
	err := a.recipes.Remove(r.Context(), name)
	if errors.Is(err, recipestore.ErrNotFound) {
		notFound(w, "stored recipe", name)
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

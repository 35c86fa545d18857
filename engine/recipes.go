package engine

import (
	"context"
	"fmt"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/recipestore"
)

// loadRecipes reads the recipe files and the stored recipes, and the
// stored recipes' version. A name both in a file and stored is an error
// naming the file and line.
func (e *Engine) loadRecipes(ctx context.Context) ([]*catalog.Recipe, int64, error) {
	rs, err := catalog.LoadRecipes(e.cfg.Catalog, e.cfg.Recipes...)
	if err != nil {
		return nil, 0, fmt.Errorf("recipes: %w", err)
	}
	version, err := e.stored.Version(ctx)
	if err != nil {
		return nil, 0, err
	}
	names, texts, err := e.stored.All(ctx)
	if err != nil {
		return nil, 0, err
	}
	files := make(map[string]*catalog.Recipe, len(rs))
	for _, r := range rs {
		files[r.Name] = r
	}
	loader := &catalog.RecipeLoader{Catalog: e.cfg.Catalog}
	for _, name := range names {
		r, err := loader.Parse(recipestore.Source(name), texts[name])
		if err != nil {
			return nil, 0, fmt.Errorf("recipes: %w", err)
		}
		if f := files[r.Name]; f != nil {
			return nil, 0, fmt.Errorf("recipes: %s:%d: recipe name %q is also a stored recipe ('ghlflow recipe remove %s' or rename one)",
				f.File, f.Line, r.Name, r.Name)
		}
		rs = append(rs, r)
	}
	return rs, version, nil
}

// reloadStored reloads the recipes when the stored ones changed since the
// engine last looked; a refused version is not tried again.
func (e *Engine) reloadStored(ctx context.Context) bool {
	v, err := e.stored.Version(ctx)
	if err != nil {
		e.log.Warn("stored recipes", "err", err)
		return false
	}
	e.tmu.Lock()
	changed := v != e.recipeVersion
	e.tmu.Unlock()
	if !changed {
		return false
	}
	if err := e.Reload(ctx); err != nil {
		e.tmu.Lock()
		e.recipeVersion = v
		e.tmu.Unlock()
	}
	return true
}

"""The prose of each dataset card, `NAME.md` for the builder module `medsets.builders.NAME`: YAML front
matter (pretty_name, license, task_categories, tags) and the text above the computed tables. Installed as
package data of `medsets.cards` (pyproject.toml maps this folder)."""

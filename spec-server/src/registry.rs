//! Model registry: the entities served, discovered from the database
//! schema and optionally limited by a models file.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::db::{Database, DbError, Entity};

/// A models file (JSON): `{"entities": ["public.users", ...]}`. Only the
/// listed entities are served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// `schema.entity` names to serve.
    pub entities: Vec<String>,
}

impl ModelsConfig {
    /// Read a models file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<ModelsConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read models file {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "models file {} is not {{\"entities\": [\"schema.entity\", ...]}}: {e}",
                path.display()
            )
        })
    }
}

/// The entities served.
#[derive(Debug, Default)]
pub struct Registry {
    entities: Vec<Arc<Entity>>,
}

impl Registry {
    /// Discover the entities of `db`, keeping only those `config` lists.
    /// A listed entity missing from the database is an error.
    pub async fn load(
        db: &dyn Database,
        config: Option<&ModelsConfig>,
    ) -> Result<Registry, DbError> {
        let mut entities = db.entities().await?;
        if let Some(config) = config {
            let wanted: HashSet<&str> = config.entities.iter().map(String::as_str).collect();
            entities.retain(|e| wanted.contains(e.full_name().as_str()));
            let found: HashSet<String> = entities.iter().map(Entity::full_name).collect();
            let missing: Vec<&&str> = wanted.iter().filter(|w| !found.contains(**w)).collect();
            if !missing.is_empty() {
                return Err(DbError(format!(
                    "models file lists entities the database lacks: {missing:?}"
                )));
            }
        }
        Ok(Registry {
            entities: entities.into_iter().map(Arc::new).collect(),
        })
    }

    /// Every entity served.
    pub fn entities(&self) -> &[Arc<Entity>] {
        &self.entities
    }

    /// The entity a request names. `schema` may be empty: then `public`
    /// is tried first, then any schema with a unique entity of that name.
    /// `entity` may also be `schema.entity`.
    pub fn find(&self, schema: Option<&str>, entity: &str) -> Option<Arc<Entity>> {
        let schema = schema.filter(|s| !s.is_empty());
        let (schema, entity) = match (schema, entity.split_once('.')) {
            (None, Some((s, e))) => (Some(s), e),
            _ => (schema, entity),
        };
        let exact = |s: &str| {
            self.entities
                .iter()
                .find(|e| e.schema == s && e.name == entity)
                .cloned()
        };
        match schema {
            Some(s) => exact(s),
            None => exact("public").or_else(|| {
                let mut named = self.entities.iter().filter(|e| e.name == entity);
                match (named.next(), named.next()) {
                    (Some(one), None) => Some(Arc::clone(one)),
                    _ => None,
                }
            }),
        }
    }
}

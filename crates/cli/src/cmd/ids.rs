//! `--id-policy` and `--id-map`, as `butd export` and `butd verify` both take them; the
//! resolution is `butd_formats::choose_id_policy`.
use std::path::PathBuf;

use butd_formats::{choose_id_policy, IdChoice, IdPolicy};

#[derive(clap::Args)]
pub struct IdArgs {
    /// How record ids (image file stems: records, LXMERT img_id, UNITER names) become image ids
    #[arg(long, value_enum, default_value = "auto")]
    id_policy: IdChoice,
    /// JSON {"<image stem>": id} or COCO-style annotations {"images": [{"id", "file_name"}]}
    /// for --id-policy map (implies it under auto)
    #[arg(long, value_name = "JSON")]
    id_map: Option<PathBuf>,
}

impl IdArgs {
    /// The chosen policy; `None` under auto without a map (the command decides by format).
    pub fn policy(&self) -> anyhow::Result<Option<IdPolicy>> {
        Ok(choose_id_policy(self.id_policy, self.id_map.as_deref())?)
    }
}

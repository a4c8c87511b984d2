use crate::args::{Format, TableArgs};
use crate::Exit;
use richness::param::{Parameterization, ScaleChoice};
use richness::train::ModelConfig;

pub fn run(a: TableArgs) -> anyhow::Result<Exit> {
    if a.arch == Some(richness::nn::Family::Gpt) {
        return gpt(a);
    }
    if a.width.is_some() {
        anyhow::bail!("--width is for --arch gpt: give the layer sizes with --dims");
    }
    let mut model = ModelConfig {
        arch: a.arch.unwrap_or_default(),
        dims: Some(a.dims.clone()),
        activation: Some(a.activation),
        bias: a.bias,
        ..ModelConfig::default()
    };
    a.residual.apply(&mut model);
    let mut choice = a.scale.apply(&ScaleChoice::default());
    a.gpt.apply(&mut model, &mut choice);
    let arch = model.resolve_dims()?;
    let p = Parameterization::resolve(&arch.layer_shapes(), &choice, a.optimizer)?;
    match a.format {
        Format::Text => {
            print!("{}", p.to_text());
            println!(
                "# activation {} with gain c_φ = {}",
                arch.activation.name(),
                richness::param::fmt_num(arch.gain)
            );
            if let Some(r) = &arch.residual {
                println!(
                    "# resmlp: layers 2..{} are residual blocks with branch scale β = {} ({}), norm {}; β multiplies g and g_b of every block",
                    r.blocks + 1,
                    richness::param::fmt_num(r.beta()),
                    r.branch.name(),
                    r.norm.name()
                );
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&p)?),
        Format::Toml => print!("{}", toml::to_string(&p)?),
    }
    warn(&a, &p);
    Ok(Exit::Ok)
}

fn warn(a: &TableArgs, p: &Parameterization) {
    if a.format != Format::Text {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
    }
}

/// `table --arch gpt`: every tensor of the GPT, with c_att.
fn gpt(a: TableArgs) -> anyhow::Result<Exit> {
    if !a.dims.is_empty() {
        anyhow::bail!(
            "--arch gpt takes --width (and --blocks, --head-dim, --context, --vocab), not --dims"
        );
    }
    let mut model = ModelConfig {
        arch: richness::nn::Family::Gpt,
        width: a.width,
        ..ModelConfig::default()
    };
    a.residual.apply(&mut model);
    let mut choice = a.scale.apply(&ScaleChoice::default());
    a.gpt.apply(&mut model, &mut choice);
    let vocab = match model.vocab {
        Some(v) => Some(v),
        None => richness::data::DataConfig::default()
            .for_sequences()?
            .load_with_context(Some(
                model.context.unwrap_or(richness::train::GPT_DEFAULTS.3),
            ))?
            .train
            .vocab_size(),
    };
    let spec = model.resolve_gpt(vocab)?;
    let p = spec.resolve(&choice, a.optimizer)?;
    let c_att = richness::param::attention_scale(&p, spec.head_dim, choice.attention_scale);
    match a.format {
        Format::Text => print!("{}", spec.scale_text(&p, c_att)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "gpt": spec, "attention_scale": c_att, "parameterization": p
            }))?
        ),
        Format::Toml => {
            // Top-level keys first, then the parameterization's tables, then [gpt].
            println!("attention_scale = {c_att:e}");
            print!("{}", toml::to_string(&p)?);
            print!("\n[gpt]\n{}", toml::to_string(&spec)?);
        }
    }
    warn(&a, &p);
    Ok(Exit::Ok)
}

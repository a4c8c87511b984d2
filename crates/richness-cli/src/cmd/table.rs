use crate::args::{Format, TableArgs};
use crate::Exit;
use richness::param::{Parameterization, ScaleChoice};
use richness::train::ModelConfig;

pub fn run(a: TableArgs) -> anyhow::Result<Exit> {
    let mut model = ModelConfig {
        arch: a.arch.unwrap_or_default(),
        dims: Some(a.dims.clone()),
        activation: Some(a.activation),
        bias: a.bias,
        ..ModelConfig::default()
    };
    a.residual.apply(&mut model);
    let arch = model.resolve_dims()?;
    let choice = a.scale.apply(&ScaleChoice::default());
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
    if a.format != Format::Text {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(Exit::Ok)
}

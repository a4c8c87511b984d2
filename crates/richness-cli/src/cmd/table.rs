use crate::args::{Format, TableArgs};
use crate::Exit;
use richness::nn::Arch;
use richness::param::{Parameterization, ScaleChoice};

pub fn run(a: TableArgs) -> anyhow::Result<Exit> {
    let mut arch = Arch::mlp(a.dims.clone(), a.activation);
    arch.bias = a.bias;
    arch.validate()?;
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

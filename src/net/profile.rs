//! Network profiles: where replicas sit (regions) and what each directed link between two
//! of them does (one-way delay, jitter and its distribution, loss, rate). Read from TOML
//! files (workloads/net/*.toml; the ones there are built in by name).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Built-in profiles, by name: the files of workloads/net/.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("lan", include_str!("../../workloads/net/lan.toml")),
    ("metro", include_str!("../../workloads/net/metro.toml")),
    ("wan3", include_str!("../../workloads/net/wan3.toml")),
];

/// Longest one-way delay a link may have (ms).
pub const DELAY_MS_MAX: f64 = 10_000.0;
/// Most regions a profile may name.
pub const REGIONS_MAX: usize = 16;

/// How jitter is drawn around the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Normal, with the jitter as its standard deviation (cut at ±3 σ).
    #[default]
    Normal,
    /// Uniform in delay ± jitter.
    Uniform,
}

/// What one directed link does to the packets crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One-way delay, ms.
    #[serde(default)]
    pub delay_ms: f64,
    /// Jitter, ms (the standard deviation for `normal`, the half width for `uniform`).
    #[serde(default)]
    pub jitter_ms: f64,
    /// How jitter is drawn.
    #[serde(default)]
    pub distribution: Distribution,
    /// Share of packets dropped, percent (each packet on its own).
    #[serde(default)]
    pub loss_percent: f64,
    /// Rate limit, Mbit/s; 0 = none.
    #[serde(default)]
    pub rate_mbit: f64,
}

impl Link {
    fn validate(&self, what: &str) -> Result<(), String> {
        let ok = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
        if !ok(self.delay_ms, DELAY_MS_MAX) || !ok(self.jitter_ms, DELAY_MS_MAX) {
            return Err(format!(
                "{what}: delay_ms and jitter_ms must lie in 0..={DELAY_MS_MAX}"
            ));
        }
        if !ok(self.loss_percent, 100.0) {
            return Err(format!("{what}: loss_percent must lie in 0..=100"));
        }
        if !ok(self.rate_mbit, 1e6) {
            return Err(format!(
                "{what}: rate_mbit must lie in 0..=1000000 (0 = none)"
            ));
        }
        Ok(())
    }
}

/// A link between regions, as written in a profile: `between = [A, B]` (both directions)
/// or `from = A, to = B` (that direction only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionLink {
    /// Both directions between these two regions.
    #[serde(default)]
    pub between: Option<[String; 2]>,
    /// One direction: from this region ...
    #[serde(default)]
    pub from: Option<String>,
    /// ... to this one.
    #[serde(default)]
    pub to: Option<String>,
    /// What the link does.
    #[serde(flatten)]
    pub link: Link,
}

/// A network profile: regions, the link between replicas of one region, the links between
/// regions. Replica `i` sits in region `i mod regions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// Region names.
    pub regions: Vec<String>,
    /// Between two replicas of the same region.
    #[serde(default)]
    pub local: Link,
    /// Between regions: every ordered pair of regions must be covered once.
    #[serde(default, rename = "link")]
    pub links: Vec<RegionLink>,
}

impl Profile {
    /// A built-in profile by name (`lan`, `metro`, `wan3`), else a TOML file at `spec`.
    pub fn load(spec: &str) -> Result<Profile, String> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == spec) {
            return Profile::from_toml(text, spec);
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            format!(
                "network profile {spec}: not a built-in ({}) and not readable as a file: {e}",
                names.join(", ")
            )
        })?;
        Profile::from_toml(&text, spec)
    }

    /// Parses and validates a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, String> {
        let p: Profile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        p.link_matrix(1)
            .map(|_| p.clone())
            .map_err(|e| format!("{origin}: {e}"))
    }

    /// The region replica `i` sits in.
    pub fn region_of(&self, replica: usize) -> usize {
        replica % self.regions.len().max(1)
    }

    /// The directed link between every two regions (`[from][to]`), checked: every region
    /// named, every ordered pair of distinct regions given exactly once.
    pub fn region_matrix(&self) -> Result<Vec<Vec<Link>>, String> {
        let r = self.regions.len();
        if r == 0 || r > REGIONS_MAX {
            return Err(format!("regions: name 1..={REGIONS_MAX} regions"));
        }
        for (i, a) in self.regions.iter().enumerate() {
            if self.regions[..i].contains(a) {
                return Err(format!("region {a:?} is named twice"));
            }
        }
        self.local.validate("local")?;
        let index = |name: &str| {
            self.regions
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("link names the unknown region {name:?}"))
        };
        let mut m: Vec<Vec<Option<Link>>> = vec![vec![None; r]; r];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = Some(self.local);
        }
        for l in &self.links {
            let pairs = match (&l.between, &l.from, &l.to) {
                (Some([a, b]), None, None) => {
                    let (a, b) = (index(a)?, index(b)?);
                    vec![(a, b), (b, a)]
                }
                (None, Some(a), Some(b)) => vec![(index(a)?, index(b)?)],
                _ => return Err("a link has either `between = [A, B]` or `from` and `to`".into()),
            };
            for (a, b) in pairs {
                let what = format!("link {} -> {}", self.regions[a], self.regions[b]);
                l.link.validate(&what)?;
                if a == b || m[a][b].is_some() {
                    return Err(format!(
                        "{what} is given twice (or is within one region: use [local])"
                    ));
                }
                m[a][b] = Some(l.link);
            }
        }
        let mut out = Vec::with_capacity(r);
        for (a, row) in m.into_iter().enumerate() {
            let mut links = Vec::with_capacity(r);
            for (b, l) in row.into_iter().enumerate() {
                links.push(l.ok_or_else(|| {
                    format!(
                        "no link from region {} to {}",
                        self.regions[a], self.regions[b]
                    )
                })?);
            }
            out.push(links);
        }
        Ok(out)
    }

    /// The directed link between every two of `n` replicas (`[from][to]`; the diagonal is
    /// unused: a replica reaches itself through its own loopback).
    pub fn link_matrix(&self, n: usize) -> Result<Vec<Vec<Link>>, String> {
        let regions = self.region_matrix()?;
        Ok((0..n)
            .map(|i| {
                (0..n)
                    .map(|j| regions[self.region_of(i)][self.region_of(j)])
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_parses_and_wan3_has_its_round_trips() {
        for (name, _) in BUILT_IN {
            Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let p = Profile::load("wan3").unwrap();
        let m = p.link_matrix(3).unwrap();
        let rtt = |a: usize, b: usize| m[a][b].delay_ms + m[b][a].delay_ms;
        assert_eq!((rtt(0, 1), rtt(0, 2), rtt(1, 2)), (30.0, 70.0, 140.0));
        // Replica 3 sits in region 0 again.
        let m5 = p.link_matrix(5).unwrap();
        assert_eq!(m5[3][0], p.local);
        assert_eq!(m5[3][1].delay_ms, 15.0);
    }

    #[test]
    fn one_way_links_and_every_error_names_what_is_wrong() {
        let text = r#"
            regions = ["a", "b"]
            [[link]]
            from = "a"
            to = "b"
            delay_ms = 2.0
            [[link]]
            from = "b"
            to = "a"
            delay_ms = 5.0
            loss_percent = 1.5
        "#;
        let m = Profile::from_toml(text, "t")
            .unwrap()
            .link_matrix(2)
            .unwrap();
        assert_eq!((m[0][1].delay_ms, m[1][0].delay_ms), (2.0, 5.0));
        assert_eq!(m[1][0].loss_percent, 1.5);
        let bad = |text: &str, want: &str| {
            let e = Profile::from_toml(text, "t").unwrap_err();
            assert!(e.contains(want), "{e} should say {want}");
        };
        bad("regions = [\"a\", \"b\"]", "no link from region a to b");
        bad("regions = []", "name 1..=");
        bad("regions = [\"a\", \"a\"]", "named twice");
        bad(
            "regions = [\"a\"]\n[local]\nloss_percent = 120.0",
            "loss_percent",
        );
        bad(
            "regions = [\"a\", \"b\"]\n[[link]]\nbetween = [\"a\", \"c\"]",
            "unknown region \"c\"",
        );
        bad(
            "regions = [\"a\", \"b\"]\n[[link]]\nbetween = [\"a\", \"b\"]\n[[link]]\nfrom = \"a\"\nto = \"b\"",
            "given twice",
        );
        bad("regions = [\"a\"]\n[local]\ndelay = 1", "unknown field");
        assert!(
            Profile::load("no-such-profile")
                .unwrap_err()
                .contains("lan, metro, wan3")
        );
    }
}

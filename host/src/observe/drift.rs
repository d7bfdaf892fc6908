//! Input-drift monitoring: how far the traffic of the last requests has moved from a
//! frozen baseline.
//!
//! Two statistics compare a baseline sample with a current one:
//!
//! * [`psi`] / [`psi_categorical`], the Population Stability Index
//!   `Σ (cᵢ − bᵢ)·ln(cᵢ / bᵢ)` over bins (numeric values, bin edges at the baseline's
//!   quantiles) or categories, graded by [`DriftLevel`];
//! * [`ks_two_sample`], the two-sample Kolmogorov–Smirnov test (numeric values only).
//!
//! [`DriftMonitor`] applies them to per-request [`Features`]: the first requests fill
//! a baseline, later ones a rolling window, and [`DriftMonitor::report`] compares the
//! two feature by feature. Memory is bounded: `baseline + window` samples, and at most
//! [`MAX_NAMES`] distinct policy names and script names.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// Floor applied to every bin or category share before the PSI sum, so that a bin
/// that is empty on one side adds a large but finite term instead of infinity.
pub const PSI_EPSILON: f64 = 1e-4;

/// Most distinct policy names, and separately script names, a [`DriftMonitor`] tracks.
/// Signals of further policies are ignored, as are further scripts; names that left
/// both windows are forgotten at [`DriftMonitor::reset_baseline`].
pub const MAX_NAMES: usize = 64;

/// Fewest values a feature needs on each side before the monitor compares it (fewer
/// when the configured baseline or window is itself smaller).
pub const MIN_SAMPLES: usize = 30;

/// Population Stability Index of `current` against `baseline`.
///
/// Bin edges are the baseline's quantiles at `1/bins, …, (bins−1)/bins` (linear
/// interpolation, numpy's default), deduplicated so heavy ties don't create empty
/// bins; bins are right-closed (`(−∞, e₁], (e₁, e₂], …, (eₖ, +∞)`), so values outside
/// the baseline's range fall into the end bins. Shares are floored at [`PSI_EPSILON`].
/// Non-finite values are ignored. `None` when either sample has no finite value.
pub fn psi(baseline: &[f64], current: &[f64], bins: usize) -> Option<f64> {
    let sorted = finite_sorted(baseline);
    let edges = quantile_edges(&sorted, bins.max(1));
    psi_from_counts(&bin_counts(&sorted, &edges), &bin_counts(current, &edges))
}

/// Population Stability Index over categories (the union of both maps' keys), with
/// shares floored at [`PSI_EPSILON`]. `None` when either side has no count.
pub fn psi_categorical(
    baseline: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Option<f64> {
    let keys: BTreeSet<&String> = baseline.keys().chain(current.keys()).collect();
    let counts = |map: &BTreeMap<String, u64>| -> Vec<u64> {
        keys.iter()
            .map(|key| map.get(*key).copied().unwrap_or(0))
            .collect()
    };
    psi_from_counts(&counts(baseline), &counts(current))
}

/// PSI between two count vectors over the same bins.
fn psi_from_counts(baseline: &[u64], current: &[u64]) -> Option<f64> {
    let (total_b, total_c) = (baseline.iter().sum::<u64>(), current.iter().sum::<u64>());
    if total_b == 0 || total_c == 0 {
        return None;
    }
    let share = |count: u64, total: u64| (count as f64 / total as f64).max(PSI_EPSILON);
    let terms = baseline.iter().zip(current).map(|(&b, &c)| {
        let (b, c) = (share(b, total_b), share(c, total_c));
        (c - b) * (c / b).ln()
    });
    Some(terms.sum())
}

/// The finite values, sorted.
fn finite_sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
}

/// Distinct interior bin edges: the quantiles `i/bins` of a sorted sample.
fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let last = sorted.len().saturating_sub(1) as f64;
    let mut edges: Vec<f64> = (1..bins)
        .filter_map(|i| {
            let h = last * i as f64 / bins as f64;
            let (low, t) = (h.floor(), h - h.floor());
            let a = *sorted.get(low as usize)?;
            Some(sorted.get(low as usize + 1).map_or(a, |&b| a + (b - a) * t))
        })
        .collect();
    edges.dedup();
    edges
}

/// Counts of the finite values in each right-closed bin between `edges`.
fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0; edges.len() + 1];
    for &value in values.iter().filter(|v| v.is_finite()) {
        if let Some(count) = counts.get_mut(edges.partition_point(|&edge| edge < value)) {
            *count += 1;
        }
    }
    counts
}

/// Result of a two-sample Kolmogorov–Smirnov test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ks {
    /// `D = sup |F_a − F_b|` over the two empirical distribution functions.
    pub statistic: f64,
    /// Two-sided p-value of `D` under the hypothesis of one common distribution.
    pub p_value: f64,
}

/// Two-sample Kolmogorov–Smirnov test; non-finite values (NaN, ±∞) are ignored and
/// `None` is returned when either sample has no finite value.
///
/// `D` is exact with ties (merge walk over sorted copies, stepping past every value
/// equal to the current one on both sides). The p-value follows scipy's
/// `ks_2samp(method="asymp")`: the Kolmogorov distribution of `D` for one sample of
/// size `n = round(n_a·n_b / (n_a + n_b))`, evaluated with the Pelz–Good (1976)
/// expansion `K₀(z) + K₁(z)/√n + K₂(z)/n + K₃(z)/n^{3/2}`, `z = D·√n` (`K₀` being the
/// limiting Kolmogorov distribution). It agrees with scipy within 2·10⁻⁴ for
/// effective `n ≥ 20` and 1.5·10⁻³ at `n = 10`; below that it is only a rough guide
/// (0.03 off at `n = 3`). p-values below ~10⁻¹⁵ come out as 0.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Option<Ks> {
    let (a, b) = (finite_sorted(a), finite_sorted(b));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let statistic = ks_statistic(&a, &b);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let effective = (n * m / (n + m)).round_ties_even().max(1.0);
    let p_value = kolmogorov_sf(effective, statistic);
    Some(Ks { statistic, p_value })
}

/// `sup |F_a − F_b|` of two non-empty sorted samples.
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0_f64);
    // Once one sample is exhausted its CDF is 1 and the gap can only shrink.
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        let value = x.min(y);
        while a.get(i) == Some(&value) {
            i += 1;
        }
        while b.get(j) == Some(&value) {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// `P(D_n > d)` for the one-sample Kolmogorov statistic, by the Pelz–Good expansion
/// (the same series, summed the same way, as scipy's `_kolmogn_PelzGood`).
fn kolmogorov_sf(n: f64, d: f64) -> f64 {
    use std::f64::consts::PI;
    if d <= 0.0 {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    let z = n.sqrt() * d;
    let (z2, z4, z6) = (z * z, z.powi(4), z.powi(6));
    if z2 >= 370.0 {
        return 0.0; // below 1e-300, as scipy takes it (this also bounds the loops)
    }
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let q_log = -pi2 / 8.0 / z2;
    if q_log < -708.0 {
        return 1.0;
    }
    let q = q_log.exp();
    // Sums over odd m = 2k − 1 of c(m)·q^(m²), by Horner's scheme in q^(8k).
    let max_k = (16.0 * z / PI).ceil().max(1.0) as i32;
    let mut sums = [0.0_f64; 4];
    for k in (1..=max_k).rev() {
        let m2 = f64::from(2 * k - 1).powi(2);
        let coefficients = [
            1.0,
            -z2 + pi2 / 4.0 * m2,
            (6.0 * z6 + 2.0 * z4)
                + (2.0 * z4 - 5.0 * z2) * pi2 / 4.0 * m2
                + pi4 * (1.0 - 2.0 * z2) / 16.0 * m2 * m2,
            (-30.0 * z6 - 90.0 * z6 * z2)
                + pi2 * (135.0 * z4 - 96.0 * z6) / 4.0 * m2
                + pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0 * m2 * m2
                + pi6 * (5.0 - 30.0 * z2) / 64.0 * m2 * m2 * m2,
        ];
        let power = q.powi(8 * k);
        for (sum, c) in sums.iter_mut().zip(coefficients) {
            *sum = *sum * power + c;
        }
    }
    let scale = q * (2.0 * PI).sqrt();
    let divisors = [z, 6.0 * z4, 72.0 * z6 * z, 6480.0 * z6 * z4];
    for (sum, divisor) in sums.iter_mut().zip(divisors) {
        *sum *= scale / divisor;
    }
    // The further terms of K₂ and K₃, summed over all k ≥ 1.
    let r = (-pi2 / 2.0 / z2).exp();
    let (mut extra2, mut extra3) = (0.0, 0.0);
    for k in 1..=max_k {
        let k2 = f64::from(k * k);
        let term = k2 * r.powf(k2);
        extra2 += term;
        extra3 += (3.0 * z2 - pi2 * k2) * term;
    }
    sums[2] += extra2 * pi2 * (2.0 * PI).sqrt() / (-36.0 * z2 * z);
    sums[3] += extra3 * pi2 * (2.0 * PI).sqrt() / (216.0 * z6);
    let cdf = sums[0] + sums[1] / n.sqrt() + sums[2] / n + sums[3] / (n * n.sqrt());
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// How far a feature has drifted, graded from its PSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftLevel {
    /// PSI below 0.1.
    None,
    /// PSI from 0.1 to 0.2.
    Moderate,
    /// PSI above 0.2.
    Significant,
}

impl DriftLevel {
    /// The level of a PSI value (0.1 and 0.2 themselves are moderate).
    pub fn from_psi(psi: f64) -> Self {
        if psi < 0.1 {
            Self::None
        } else if psi <= 0.2 {
            Self::Moderate
        } else {
            Self::Significant
        }
    }
}

/// Share of the characters of `text` that are not ASCII; 0 for empty text.
pub fn non_ascii_ratio(text: &str) -> f64 {
    let (total, non_ascii) = text.chars().fold((0_usize, 0_usize), |(total, non), c| {
        (total + 1, non + usize::from(!c.is_ascii()))
    });
    if total == 0 {
        0.0
    } else {
        non_ascii as f64 / total as f64
    }
}

/// The scripts [`dominant_script`] tells apart, in the order that breaks ties.
const SCRIPTS: [&str; 5] = ["latin", "cyrillic", "cjk", "arabic", "other"];

/// The script that most letters of `text` belong to: `latin`, `cyrillic`, `cjk` (Han,
/// kana, hangul), `arabic` or `other`; `none` when `text` has no letter. Digits,
/// punctuation and spaces don't count; ties go to the earlier script in that list.
pub fn dominant_script(text: &str) -> &'static str {
    let mut counts = [0_usize; SCRIPTS.len()];
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        if let Some(count) = counts.get_mut(script_index(c)) {
            *count += 1;
        }
    }
    // Reversed, so that `max_by_key` (which keeps the last maximum) keeps the first.
    match counts
        .into_iter()
        .zip(SCRIPTS)
        .rev()
        .max_by_key(|&(count, _)| count)
    {
        Some((count, name)) if count > 0 => name,
        _ => "none",
    }
}

/// Index into [`SCRIPTS`] of a letter, by Unicode block.
fn script_index(c: char) -> usize {
    match c {
        'A'..='Z'
        | 'a'..='z'
        | '\u{00C0}'..='\u{024F}'
        | '\u{1E00}'..='\u{1EFF}'
        | '\u{2C60}'..='\u{2C7F}'
        | '\u{A720}'..='\u{A7FF}'
        | '\u{FF21}'..='\u{FF3A}'
        | '\u{FF41}'..='\u{FF5A}' => 0,
        '\u{0400}'..='\u{052F}' | '\u{1C80}'..='\u{1C8F}' | '\u{2DE0}'..='\u{2DFF}' => 1,
        '\u{A640}'..='\u{A69F}' => 1,
        '\u{1100}'..='\u{11FF}'
        | '\u{2E80}'..='\u{2FDF}'
        | '\u{3040}'..='\u{31FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF66}'..='\u{FFDC}'
        | '\u{20000}'..='\u{3134F}' => 2,
        '\u{0600}'..='\u{06FF}'
        | '\u{0750}'..='\u{077F}'
        | '\u{0870}'..='\u{08FF}'
        | '\u{FB50}'..='\u{FDFF}'
        | '\u{FE70}'..='\u{FEFF}' => 3,
        _ => 4,
    }
}

/// What the drift monitor records about one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// Prompt tokens.
    pub prompt_tokens: f64,
    /// Messages in the request.
    pub messages: f64,
    /// Tools offered to the model.
    pub tools: f64,
    /// Share of non-ASCII characters in the prompt text ([`non_ascii_ratio`]).
    pub non_ascii_ratio: f64,
    /// Dominant script of the prompt text ([`dominant_script`]); empty (not counted)
    /// when unknown.
    pub script: String,
    /// One signal per policy that ran on the request; later duplicates are ignored.
    pub policies: Vec<PolicySignal>,
}

/// What one policy said about a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySignal {
    /// The policy's name.
    pub policy: String,
    /// Whether the policy reported a finding.
    pub flagged: bool,
    /// The policy's score, when it gives one (non-finite scores are ignored).
    pub score: Option<f64>,
}

/// Window sizes of a [`DriftMonitor`] (the `[drift]` configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSettings {
    /// Requests in the baseline (default 500; at least 1).
    pub baseline: usize,
    /// Requests in the rolling current window (default 500; at least 1).
    pub window: usize,
    /// PSI bins for numeric features (default 10; at least 2).
    pub bins: usize,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            baseline: 500,
            window: 500,
            bins: 10,
        }
    }
}

/// The numeric features, in [`Sample::numeric`] and report order.
const NUMERIC: [&str; 4] = ["prompt_tokens", "messages", "tools", "non_ascii_ratio"];

/// One observed request, with names interned.
#[derive(Debug, Clone)]
struct Sample {
    numeric: [f64; 4],
    script: Option<u8>,
    signals: Vec<Signal>,
}

/// One policy signal, with the policy interned.
#[derive(Debug, Clone, Copy)]
struct Signal {
    policy: u8,
    flagged: bool,
    score: Option<f64>,
}

/// A table of at most [`MAX_NAMES`] names, each known by its index.
#[derive(Debug, Clone, Default)]
struct Names(Vec<String>);

impl Names {
    /// The id of `name`, adding it when there is room.
    fn id(&mut self, name: &str) -> Option<u8> {
        let index = match self.0.iter().position(|known| known == name) {
            Some(index) => index,
            None if self.0.len() < MAX_NAMES => {
                self.0.push(name.to_owned());
                self.0.len() - 1
            }
            None => return None,
        };
        u8::try_from(index).ok()
    }

    /// The name of `id`.
    fn name(&self, id: u8) -> Option<&str> {
        self.0.get(usize::from(id)).map(String::as_str)
    }
}

/// Where a [`DriftMonitor`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportState {
    /// The baseline is not full yet.
    CollectingBaseline,
    /// The current window is too small to compare.
    CollectingWindow,
    /// Features are compared.
    Ready,
}

/// Drift of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// `prompt_tokens`, `messages`, `tools`, `non_ascii_ratio`, `script`,
    /// `policy:<name>:finding_rate` or `policy:<name>:score`.
    pub name: String,
    /// Values of this feature in the baseline.
    pub baseline: usize,
    /// Values of this feature in the current window.
    pub current: usize,
    /// PSI; `None` when either side has fewer than [`MIN_SAMPLES`] values.
    pub psi: Option<f64>,
    /// The level of `psi`.
    pub level: Option<DriftLevel>,
    /// Kolmogorov–Smirnov test (numeric features with enough values only).
    pub ks: Option<Ks>,
}

impl FeatureDrift {
    fn new(name: String, counts: (usize, usize), psi: Option<f64>, ks: Option<Ks>) -> Self {
        let (baseline, current) = counts;
        let level = psi.map(DriftLevel::from_psi);
        Self {
            name,
            baseline,
            current,
            psi,
            level,
            ks,
        }
    }
}

/// What [`DriftMonitor::report`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Where the monitor stands; features are compared only when `ready`.
    pub state: ReportState,
    /// Requests in the baseline.
    pub baseline: usize,
    /// Requests in the current window.
    pub current: usize,
    /// Requests the current window needs before the report is `ready`.
    pub ready_at: usize,
    /// Per-feature drift: the numeric features, `script`, then each policy by name.
    pub features: Vec<FeatureDrift>,
    /// The highest level among the features.
    pub worst: Option<DriftLevel>,
}

/// Per-policy tallies of one side.
#[derive(Debug, Clone, Default)]
struct PolicyTally {
    /// Requests with a signal: `[not flagged, flagged]`.
    flags: [u64; 2],
    scores: Vec<f64>,
}

/// Compares a rolling window of requests with a frozen baseline.
///
/// The first `baseline` requests fill the baseline, which then stays as it is until
/// [`reset_baseline`](Self::reset_baseline); every later request enters a ring buffer of
/// the last `window` requests. [`observe`](Self::observe) is O(1) (no sorting);
/// [`report`](Self::report) sorts the values of each feature, O((b + w)·log(b + w)).
/// A policy's finding rate is its share of flagged requests among those it ran on.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    settings: DriftSettings,
    baseline: Vec<Sample>,
    current: VecDeque<Sample>,
    scripts: Names,
    policies: Names,
}

impl DriftMonitor {
    /// A monitor with an empty baseline; sizes below their minimum are raised to it.
    pub fn new(settings: DriftSettings) -> Self {
        let settings = DriftSettings {
            baseline: settings.baseline.max(1),
            window: settings.window.max(1),
            bins: settings.bins.max(2),
        };
        Self {
            settings,
            baseline: Vec::new(),
            current: VecDeque::new(),
            scripts: Names::default(),
            policies: Names::default(),
        }
    }

    /// Records one request: into the baseline while it is not full, else into the
    /// current window (evicting its oldest request when full).
    pub fn observe(&mut self, features: &Features) {
        let sample = self.sample(features);
        if self.baseline.len() < self.settings.baseline {
            self.baseline.push(sample);
            return;
        }
        if self.current.len() >= self.settings.window {
            self.current.pop_front();
        }
        self.current.push_back(sample);
    }

    /// Makes the current window the baseline and empties the window. When the window
    /// held fewer than `baseline` requests, the next requests complete the baseline.
    /// Names that no longer occur in the new baseline are forgotten.
    pub fn reset_baseline(&mut self) {
        self.baseline = self.current.drain(..).collect();
        let scripts = std::mem::take(&mut self.scripts);
        let policies = std::mem::take(&mut self.policies);
        // Re-intern what the baseline uses: a subset of the old names, so all fit.
        for sample in &mut self.baseline {
            let script = sample.script.and_then(|id| scripts.name(id));
            sample.script = script.and_then(|name| self.scripts.id(name));
            sample.signals.retain_mut(|signal| {
                let name = policies.name(signal.policy);
                let id = name.and_then(|name| self.policies.id(name));
                signal.policy = id.unwrap_or(signal.policy);
                id.is_some()
            });
        }
    }

    /// Compares the current window with the baseline.
    pub fn report(&self) -> DriftReport {
        let state = if self.baseline.len() < self.settings.baseline {
            ReportState::CollectingBaseline
        } else if self.current.len() < self.ready_at() {
            ReportState::CollectingWindow
        } else {
            ReportState::Ready
        };
        let features = match state {
            ReportState::Ready => self.features(),
            _ => Vec::new(),
        };
        let worst = features.iter().filter_map(|feature| feature.level).max();
        DriftReport {
            state,
            baseline: self.baseline.len(),
            current: self.current.len(),
            ready_at: self.ready_at(),
            features,
            worst,
        }
    }

    /// Half the window, but at least [`MIN_SAMPLES`] (or the whole window if smaller).
    fn ready_at(&self) -> usize {
        let window = self.settings.window;
        (window / 2).max(MIN_SAMPLES).min(window)
    }

    /// Fewest values a feature needs on each side to be compared.
    fn min_samples(&self) -> usize {
        MIN_SAMPLES
            .min(self.settings.baseline)
            .min(self.settings.window)
    }

    fn sample(&mut self, features: &Features) -> Sample {
        let mut signals: Vec<Signal> = Vec::new();
        for signal in &features.policies {
            let Some(policy) = self.policies.id(&signal.policy) else {
                continue;
            };
            if signals.iter().all(|known| known.policy != policy) {
                let score = signal.score.filter(|score| score.is_finite());
                let flagged = signal.flagged;
                signals.push(Signal {
                    policy,
                    flagged,
                    score,
                });
            }
        }
        Sample {
            numeric: [
                features.prompt_tokens,
                features.messages,
                features.tools,
                features.non_ascii_ratio,
            ],
            script: (!features.script.is_empty())
                .then(|| self.scripts.id(&features.script))
                .flatten(),
            signals,
        }
    }

    fn features(&self) -> Vec<FeatureDrift> {
        let (baseline, current) = (self.baseline.iter(), self.current.iter());
        let (numeric_b, numeric_c) = (numeric_values(baseline), numeric_values(current));
        let mut features: Vec<FeatureDrift> = NUMERIC
            .iter()
            .zip(numeric_b.iter().zip(&numeric_c))
            .map(|(name, (b, c))| self.numeric_drift((*name).to_owned(), b, c))
            .collect();
        features.push(self.script_drift());
        features.extend(self.policy_drift());
        features
    }

    fn numeric_drift(&self, name: String, baseline: &[f64], current: &[f64]) -> FeatureDrift {
        let counts = (baseline.len(), current.len());
        if counts.0 < self.min_samples() || counts.1 < self.min_samples() {
            return FeatureDrift::new(name, counts, None, None);
        }
        let psi = psi(baseline, current, self.settings.bins);
        FeatureDrift::new(name, counts, psi, ks_two_sample(baseline, current))
    }

    fn script_drift(&self) -> FeatureDrift {
        let (b, c) = (
            self.script_counts(&self.baseline),
            self.script_counts(&self.current),
        );
        self.counts_drift("script".to_owned(), &b, &c)
    }

    fn script_counts<'a>(&self, samples: impl IntoIterator<Item = &'a Sample>) -> Vec<u64> {
        let mut counts = vec![0_u64; self.scripts.0.len()];
        for id in samples.into_iter().filter_map(|sample| sample.script) {
            if let Some(count) = counts.get_mut(usize::from(id)) {
                *count += 1;
            }
        }
        counts
    }

    /// PSI between two category count vectors, when both sides have enough requests.
    fn counts_drift(&self, name: String, baseline: &[u64], current: &[u64]) -> FeatureDrift {
        let total = |counts: &[u64]| usize::try_from(counts.iter().sum::<u64>()).unwrap_or(0);
        let counts = (total(baseline), total(current));
        let enough = counts.0 >= self.min_samples() && counts.1 >= self.min_samples();
        let psi = enough.then(|| psi_from_counts(baseline, current)).flatten();
        FeatureDrift::new(name, counts, psi, None)
    }

    fn policy_drift(&self) -> Vec<FeatureDrift> {
        let (b, c) = (
            self.policy_tallies(&self.baseline),
            self.policy_tallies(&self.current),
        );
        let mut policies: Vec<_> = self.policies.0.iter().zip(b.iter().zip(&c)).collect();
        policies.sort_by(|x, y| x.0.cmp(y.0));
        let mut features = Vec::new();
        for (name, (b, c)) in policies {
            if b.flags == [0, 0] && c.flags == [0, 0] {
                continue;
            }
            let rate = format!("policy:{name}:finding_rate");
            features.push(self.counts_drift(rate, &b.flags, &c.flags));
            if !b.scores.is_empty() || !c.scores.is_empty() {
                let score = format!("policy:{name}:score");
                features.push(self.numeric_drift(score, &b.scores, &c.scores));
            }
        }
        features
    }

    fn policy_tallies<'a>(
        &self,
        samples: impl IntoIterator<Item = &'a Sample>,
    ) -> Vec<PolicyTally> {
        let mut tallies = vec![PolicyTally::default(); self.policies.0.len()];
        for signal in samples.into_iter().flat_map(|sample| &sample.signals) {
            if let Some(tally) = tallies.get_mut(usize::from(signal.policy)) {
                tally.flags[usize::from(signal.flagged)] += 1;
                tally.scores.extend(signal.score);
            }
        }
        tallies
    }
}

/// The finite values of each numeric feature.
fn numeric_values<'a>(samples: impl Iterator<Item = &'a Sample>) -> [Vec<f64>; 4] {
    let mut values: [Vec<f64>; 4] = Default::default();
    for sample in samples {
        for (column, value) in values.iter_mut().zip(sample.numeric) {
            if value.is_finite() {
                column.push(value);
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values come from /work/scratch/ref/ref.py (numpy 2, scipy 1.17.1),
    // which reproduces the generators below bit for bit:
    //
    //   class Lcg:                      # same constants, top 53 bits / 2**53
    //       def __init__(self, seed): self.s = seed
    //       def uniform(self):
    //           self.s = (self.s * 6364136223846793005 + 1442695040888963407) % 2**64
    //           return (self.s >> 11) / 2.0**53
    //       def normal(self):           # Irwin–Hall: 12 uniforms − 6, σ = 1
    //           t = 0.0
    //           for _ in range(12): t += self.uniform()
    //           return t - 6.0
    //   def psi(b, c, bins):
    //       edges = np.unique(np.quantile(b, np.arange(1, bins) / bins))
    //       k = len(edges) + 1
    //       pb = np.bincount(np.searchsorted(edges, b, side="left"), minlength=k) / len(b)
    //       pc = np.bincount(np.searchsorted(edges, c, side="left"), minlength=k) / len(c)
    //       pb, pc = np.maximum(pb, 1e-4), np.maximum(pc, 1e-4)
    //       return np.sum((pc - pb) * np.log(pc / pb))
    //   def normals(seed, n, shift):
    //       r = Lcg(seed); return [r.normal() + shift for _ in range(n)]
    //   def counts(seed, n, squared):    # message-count-like integers 1..=6
    //       r = Lcg(seed); out = []
    //       for _ in range(n):
    //           u = r.uniform()
    //           out.append(math.floor(6.0 * (u * u if squared else u * math.sqrt(u))) + 1.0)
    //       return out
    //   r = scipy.stats.ks_2samp(a, b, method="asymp")
    //   print(psi(a, b, 10), r.statistic, r.pvalue)
    //
    // Each constant below is `[psi, D, p]` for the `a`, `b` in its comment.

    /// `normals(1, 1000, 0.0)`, `normals(2, 1000, 0.0)`.
    const SAME: [f64; 3] = [0.02472643131560427, 0.03200000000000003, 0.6729558276468219];
    /// `normals(1, 1000, 0.0)`, `normals(3, 1000, 0.4)`.
    const SHIFT_04: [f64; 3] = [
        0.1338952573506324,
        0.14299999999999996,
        2.196197753984786e-9,
    ];
    /// `normals(1, 1000, 0.0)`, `normals(3, 1000, 0.5)`.
    const SHIFT_05: [f64; 3] = [0.22042129960192836, 0.182, 5.766838626450986e-15];
    /// `normals(1, 1000, 0.0)`, `normals(3, 1000, 1.0)`.
    const SHIFT_10: [f64; 3] = [
        0.9328217372950615,
        0.36599999999999994,
        1.491820644498388e-60,
    ];
    /// `normals(5, 60, 0.0)`, `normals(11, 45, 0.0)`.
    const SMALL_SAME: [f64; 3] = [0.3573407553640708, 0.15000000000000002, 0.552100914526503];
    /// `normals(5, 60, 0.0)`, `normals(6, 45, 0.3)`.
    const SMALL_SHIFT: [f64; 3] = [1.0732004701085613, 0.3222222222222222, 0.006672256305208624];
    /// `counts(7, 200, True)`, `counts(8, 150, False)`.
    const TIES_SHIFT: [f64; 3] = [
        0.19316419679670765,
        0.19333333333333333,
        0.002729633913879013,
    ];
    /// `counts(7, 200, True)`, `counts(9, 150, True)`.
    const TIES_SAME: [f64; 3] = [
        0.03453405652663229,
        0.026666666666666672,
        0.9999998417660422,
    ];

    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1_u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
        }
    }

    fn normals(seed: u64, n: usize, shift: f64) -> Vec<f64> {
        let mut rng = Lcg(seed);
        (0..n).map(|_| rng.normal() + shift).collect()
    }

    /// Message-count-like integers 1..=6: `1 + floor(6·u^p)`, `p` 2 or 1.5.
    fn counts(seed: u64, n: usize, squared: bool) -> Vec<f64> {
        let mut rng = Lcg(seed);
        let draw = |u: f64| if squared { u * u } else { u * u.sqrt() };
        (0..n)
            .map(|_| (6.0 * draw(rng.uniform())).floor() + 1.0)
            .collect()
    }

    #[track_caller]
    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    /// Checks PSI (10 bins), D and p against the reference values.
    #[track_caller]
    fn check(a: &[f64], b: &[f64], [psi_value, d, p]: [f64; 3]) -> (f64, Ks) {
        let value = psi(a, b, 10).expect("non-empty");
        let ks = ks_two_sample(a, b).expect("non-empty");
        close(value, psi_value, 1e-9);
        close(ks.statistic, d, 1e-12);
        close(ks.p_value, p, 1e-3);
        (value, ks)
    }

    #[test]
    fn identical_samples_have_no_drift() {
        let a = normals(1, 1000, 0.0);
        assert_eq!(psi(&a, &a, 10), Some(0.0));
        assert_eq!(
            ks_two_sample(&a, &a),
            Some(Ks {
                statistic: 0.0,
                p_value: 1.0
            })
        );
    }

    #[test]
    fn samples_of_one_distribution_match_scipy() {
        let (value, ks) = check(&normals(1, 1000, 0.0), &normals(2, 1000, 0.0), SAME);
        assert_eq!(DriftLevel::from_psi(value), DriftLevel::None);
        assert!(ks.p_value > 0.5);
    }

    #[test]
    fn mean_shifts_match_scipy_and_grade() {
        let base = normals(1, 1000, 0.0);
        let cases = [(0.4, SHIFT_04), (0.5, SHIFT_05), (1.0, SHIFT_10)];
        let levels: Vec<DriftLevel> = cases
            .iter()
            .map(|&(shift, expected)| check(&base, &normals(3, 1000, shift), expected).0)
            .map(DriftLevel::from_psi)
            .collect();
        use DriftLevel::{Moderate, Significant};
        assert_eq!(levels, [Moderate, Significant, Significant]);
    }

    #[test]
    fn small_samples_use_the_finite_n_distribution() {
        // n = 60 and 45: effective n = round(25.7) = 26, where the plain Kolmogorov
        // limit would be off by ~0.05.
        let a = normals(5, 60, 0.0);
        check(&a, &normals(11, 45, 0.0), SMALL_SAME);
        check(&a, &normals(6, 45, 0.3), SMALL_SHIFT);
    }

    #[test]
    fn ks_handles_ties() {
        // F_a steps to 3/6, 5/6, 1 and F_b to 1/6, 3/6, 1 at 1, 2, 3: D = 2/6.
        let ks = ks_two_sample(
            &[1.0, 1.0, 1.0, 2.0, 2.0, 3.0],
            &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0],
        );
        let ks = ks.expect("non-empty");
        close(ks.statistic, 1.0 / 3.0, 1e-12);
        // scipy: 0.7777777777777778 (exact for n = 3); Pelz–Good is rough at n = 3.
        close(ks.p_value, 0.7777777777777778, 0.03);
        let a = counts(7, 200, true);
        check(&a, &counts(8, 150, false), TIES_SHIFT);
        check(&a, &counts(9, 150, true), TIES_SAME);
    }

    #[test]
    fn ks_extremes() {
        let range = |from: i32, to: i32| (from..to).map(f64::from).collect::<Vec<_>>();
        let disjoint = ks_two_sample(&range(0, 100), &range(200, 300));
        assert_eq!(
            disjoint,
            Some(Ks {
                statistic: 1.0,
                p_value: 0.0
            })
        );
        // D = 0.7 at effective n = 1000: n·D² = 490, past scipy's cut-off of 370
        // (scipy gives p = 0.0 for both cases).
        let far = ks_two_sample(&range(0, 2000), &range(1400, 3400)).expect("non-empty");
        close(far.statistic, 0.7, 1e-12);
        assert_eq!(far.p_value, 0.0);
    }

    #[test]
    fn heavy_ties_collapse_bins() {
        // np.quantile([1, 1, 1, 1, 2, 3], [.25, .5, .75]) = [1, 1, 1.75]
        assert_eq!(
            quantile_edges(&[1.0, 1.0, 1.0, 1.0, 2.0, 3.0], 4),
            [1.0, 1.75]
        );
        let same = vec![5.0; 100];
        assert_eq!(psi(&same, &same, 10), Some(0.0));
        // One edge (5) and two bins: shares (1, ε) against (ε, 1):
        // 2·(1 − 10⁻⁴)·ln(10⁴) = 18.41883867587797.
        let above = vec![6.0; 40];
        close(
            psi(&same, &above, 10).expect("non-empty"),
            18.41883867587797,
            1e-9,
        );
    }

    #[test]
    fn categorical_psi_by_hand() {
        let map = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
        };
        let baseline = map(&[("latin", 80), ("cyrillic", 20)]);
        let current = map(&[("latin", 50), ("cyrillic", 30), ("cjk", 20)]);
        // latin:    (0.5 − 0.8)·ln(0.5/0.8)       = 0.1410011...
        // cyrillic: (0.3 − 0.2)·ln(0.3/0.2)       = 0.0405465...
        // cjk:      (0.2 − 1e-4)·ln(0.2/1e-4)     = 1.5194203...   (baseline share floored)
        let value = psi_categorical(&baseline, &current).expect("non-empty");
        close(value, 1.7009680012469994, 1e-12);
        assert_eq!(psi_categorical(&baseline, &baseline), Some(0.0));
    }

    #[test]
    fn empty_and_non_finite_inputs() {
        let some = [1.0, 2.0, 3.0];
        assert_eq!(psi(&[], &some, 10), None);
        assert_eq!(psi(&some, &[], 10), None);
        assert_eq!(psi(&[f64::NAN], &some, 10), None);
        assert_eq!(ks_two_sample(&[], &some), None);
        assert_eq!(ks_two_sample(&some, &[f64::NAN, f64::INFINITY]), None);
        let empty = BTreeMap::new();
        let one = BTreeMap::from([("latin".to_owned(), 3)]);
        assert_eq!(psi_categorical(&empty, &one), None);
        assert_eq!(psi_categorical(&one, &empty), None);
        let with_nan = [f64::NAN, 1.0, 2.0, f64::NAN, 3.0];
        let other = [2.5, 3.5, 4.5];
        assert_eq!(
            ks_two_sample(&with_nan, &other),
            ks_two_sample(&some, &other)
        );
        assert_eq!(psi(&with_nan, &other, 4), psi(&some, &other, 4));
    }

    #[test]
    fn drift_levels() {
        let levels = [0.0, 0.099, 0.1, 0.2, 0.2001].map(DriftLevel::from_psi);
        use DriftLevel::{Moderate, None as Stable, Significant};
        assert_eq!(levels, [Stable, Stable, Moderate, Moderate, Significant]);
        assert_eq!(
            serde_json::to_string(&levels).expect("serializes"),
            r#"["none","none","moderate","moderate","significant"]"#
        );
    }

    #[test]
    fn text_features() {
        close(non_ascii_ratio("héllo"), 0.2, 1e-12);
        assert_eq!(non_ascii_ratio(""), 0.0);
        assert_eq!(non_ascii_ratio("plain"), 0.0);
        let scripts = [
            "Hello, world",
            "Привет, мир",
            "你好，世界",
            "こんにちは",
            "안녕하세요",
            "مرحبا بالعالم",
            "שלום",
            "123 + 4 = ?",
            "",
            "hello привет мир",
            "ab бв",
        ]
        .map(dominant_script);
        let expected = [
            "latin", "cyrillic", "cjk", "cjk", "cjk", "arabic", "other", "none", "none",
            "cyrillic", "latin",
        ];
        assert_eq!(scripts, expected);
    }

    #[test]
    fn settings_deserialize_with_defaults() {
        let parse = |text: &str| serde_json::from_str::<DriftSettings>(text);
        assert_eq!(parse("{}").expect("valid"), DriftSettings::default());
        let settings = parse(r#"{"window": 100}"#).expect("valid");
        assert_eq!(
            (settings.baseline, settings.window, settings.bins),
            (500, 100, 10)
        );
        assert!(parse(r#"{"windows": 100}"#).is_err());
    }

    /// A request with normal-like prompt tokens (shifted by `shift` σ), 1–6 messages,
    /// 0–2 tools, a small non-ASCII share, 20% cyrillic and one `pii` signal.
    fn request(rng: &mut Lcg, shift: f64, flagged: bool) -> Features {
        let script = if rng.uniform() < 0.2 {
            "cyrillic"
        } else {
            "latin"
        };
        Features {
            prompt_tokens: 200.0 + 50.0 * (rng.normal() + shift),
            messages: (6.0 * rng.uniform() * rng.uniform()).floor() + 1.0,
            tools: (3.0 * rng.uniform()).floor(),
            non_ascii_ratio: 0.1 * rng.uniform(),
            script: script.to_owned(),
            policies: vec![PolicySignal {
                policy: "pii".to_owned(),
                flagged,
                score: Some(rng.uniform()),
            }],
        }
    }

    fn tokens(prompt_tokens: f64) -> Features {
        Features {
            prompt_tokens,
            ..Features::default()
        }
    }

    fn monitor(baseline: usize, window: usize) -> DriftMonitor {
        DriftMonitor::new(DriftSettings {
            baseline,
            window,
            bins: 10,
        })
    }

    fn front_tokens(monitor: &DriftMonitor) -> Option<f64> {
        monitor.current.front().map(|sample| sample.numeric[0])
    }

    #[test]
    fn baseline_fills_then_freezes_and_window_wraps() {
        let mut monitor = monitor(50, 40);
        for i in 0..50 {
            monitor.observe(&tokens(f64::from(i)));
        }
        assert_eq!((monitor.baseline.len(), monitor.current.len()), (50, 0));
        for i in 50..150 {
            monitor.observe(&tokens(f64::from(i)));
        }
        let baseline: Vec<f64> = monitor.baseline.iter().map(|s| s.numeric[0]).collect();
        assert_eq!(baseline, (0..50).map(f64::from).collect::<Vec<_>>());
        // 100 requests went through a ring of 40: the last 40 (110..150) remain.
        assert_eq!(monitor.current.len(), 40);
        assert_eq!(front_tokens(&monitor), Some(110.0));
        assert_eq!(monitor.current.back().map(|s| s.numeric[0]), Some(149.0));
    }

    #[test]
    fn report_states() {
        let mut monitor = monitor(100, 100);
        let mut rng = Lcg(21);
        let mut states = Vec::new();
        for step in [99, 1, 49, 1] {
            for _ in 0..step {
                monitor.observe(&request(&mut rng, 0.0, false));
            }
            let report = monitor.report();
            assert_eq!(
                report.features.is_empty(),
                report.state != ReportState::Ready
            );
            states.push((report.state, report.baseline, report.current));
        }
        use ReportState::{CollectingBaseline, CollectingWindow, Ready};
        let expected = [
            (CollectingBaseline, 99, 0),
            (CollectingWindow, 100, 0),
            (CollectingWindow, 100, 49),
            (Ready, 100, 50),
        ];
        assert_eq!(states, expected);
        let json = serde_json::to_value(monitor.report()).expect("serializes");
        assert_eq!(json["state"], "ready");
        assert_eq!(json["ready_at"], 50);
    }

    #[test]
    fn reset_baseline_adopts_the_window() {
        let mut monitor = monitor(50, 40);
        for i in 0..130 {
            monitor.observe(&tokens(f64::from(i)));
        }
        monitor.reset_baseline();
        let baseline: Vec<f64> = monitor.baseline.iter().map(|s| s.numeric[0]).collect();
        assert_eq!(baseline, (90..130).map(f64::from).collect::<Vec<_>>());
        // The window held 40 < 50 requests: the next 10 complete the baseline.
        assert_eq!(monitor.report().state, ReportState::CollectingBaseline);
        for i in 130..141 {
            monitor.observe(&tokens(f64::from(i)));
        }
        assert_eq!((monitor.baseline.len(), monitor.current.len()), (50, 1));
        assert_eq!(front_tokens(&monitor), Some(140.0));
    }

    #[test]
    fn shifted_prompt_tokens_are_significant_and_the_rest_is_not() {
        let mut monitor = monitor(500, 500);
        let mut rng = Lcg(42);
        for i in 0..1000 {
            let shift = if i < 500 { 0.0 } else { 1.5 };
            monitor.observe(&request(&mut rng, shift, i % 20 == 0));
        }
        let report = monitor.report();
        assert_eq!(report.state, ReportState::Ready);
        let names: Vec<&str> = report.features.iter().map(|f| f.name.as_str()).collect();
        let expected = [
            "prompt_tokens",
            "messages",
            "tools",
            "non_ascii_ratio",
            "script",
            "policy:pii:finding_rate",
            "policy:pii:score",
        ];
        assert_eq!(names, expected);
        let levels: Vec<_> = report.features.iter().map(|f| f.level).collect();
        let mut expected = vec![Some(DriftLevel::None); 7];
        expected[0] = Some(DriftLevel::Significant);
        assert_eq!(levels, expected);
        assert_eq!(report.worst, Some(DriftLevel::Significant));
        let p_values: Vec<_> = report
            .features
            .iter()
            .map(|f| f.ks.map(|ks| ks.p_value))
            .collect();
        assert!(p_values[0].is_some_and(|p| p < 1e-10));
        assert!(p_values[1..4].iter().all(|p| p.is_some_and(|p| p > 0.05)));
        assert_eq!(p_values[4..6], [None, None]);
        // 25 of 500 flagged on both sides: identical shares.
        assert_eq!(report.features[5].psi, Some(0.0));
        assert_eq!(
            (report.features[5].baseline, report.features[5].current),
            (500, 500)
        );
    }

    #[test]
    fn finding_rate_moves_when_flags_rise() {
        let mut monitor = monitor(500, 500);
        let mut rng = Lcg(7);
        for i in 0..500 {
            monitor.observe(&request(&mut rng, 0.0, i % 20 == 0));
        }
        for i in 0..500 {
            monitor.observe(&request(&mut rng, 0.0, i % 5 < 2));
        }
        let report = monitor.report();
        let rate = report
            .features
            .iter()
            .find(|f| f.name == "policy:pii:finding_rate")
            .expect("reported");
        // 5% → 40%: 0.35·ln(0.40/0.05) + (0.60 − 0.95)·ln(0.60/0.95) = 0.8886408548703966
        close(
            rate.psi.expect("enough requests"),
            0.8886408548703966,
            1e-12,
        );
        assert_eq!(rate.level, Some(DriftLevel::Significant));
        assert_eq!(rate.ks, None);
        assert_eq!(report.features[0].level, Some(DriftLevel::None));
    }

    #[test]
    fn script_mix_drifts() {
        let mut monitor = monitor(100, 100);
        let script = |script: &str| Features {
            script: script.to_owned(),
            ..Features::default()
        };
        let baseline = [("latin", 80), ("cyrillic", 20)];
        let current = [("latin", 50), ("cyrillic", 30), ("cjk", 20)];
        for (name, count) in baseline.into_iter().chain(current) {
            (0..count).for_each(|_| monitor.observe(&script(name)));
        }
        let report = monitor.report();
        let drift = report.features.iter().find(|f| f.name == "script");
        let drift = drift.expect("reported");
        // The shares of `categorical_psi_by_hand`.
        close(
            drift.psi.expect("enough requests"),
            1.7009680012469994,
            1e-12,
        );
        assert_eq!(
            (drift.level, drift.ks),
            (Some(DriftLevel::Significant), None)
        );
    }

    #[test]
    fn policy_names_are_bounded_and_forgotten_at_reset() {
        let mut monitor = monitor(70, 10);
        let signal = |name: String| Features {
            policies: vec![PolicySignal {
                policy: name,
                flagged: true,
                score: None,
            }],
            ..Features::default()
        };
        for i in 0..70 {
            monitor.observe(&signal(format!("old-{i}")));
        }
        assert_eq!(monitor.policies.0.len(), MAX_NAMES);
        assert_eq!(
            monitor
                .baseline
                .iter()
                .filter(|s| s.signals.is_empty())
                .count(),
            6
        );
        for _ in 0..10 {
            monitor.observe(&signal("old-63".to_owned()));
        }
        monitor.reset_baseline();
        assert_eq!(monitor.policies.0, ["old-63"]);
        let first = |sample: &Sample| sample.signals.first().map(|signal| signal.policy);
        let ids: Vec<_> = monitor.baseline.iter().map(first).collect();
        assert_eq!(ids, [Some(0); 10]);
        monitor.observe(&signal("new".to_owned()));
        assert_eq!(monitor.policies.0, ["old-63", "new"]);
    }
}

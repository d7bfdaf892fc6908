//! The detection rules and the other pattern lists, all compiled by the host.
//!
//! Rules are written as readable *templates* over the normalized text (lower case,
//! see [`crate::normalize`]) and turned into regular expressions by [`compile`]:
//! * a space stands for a flexible word separator ([`SEPARATOR`]: one to four
//!   characters that are not ASCII letters or digits), so `ignore previous` also
//!   matches `ignore -- previous` and `ignore,previous`;
//! * `_` stands for exactly one space: lead phrases use it (`do_not`) so the regex
//!   engine gets a long literal prefix to search for, which keeps scans fast;
//! * `~` stands for an ASCII word boundary;
//! * `l` becomes `i`, as the normalizer folds `l`, `1`, `|` and `I` to `i`.
//!
//! Templates therefore never contain a literal space, `_` or `~`, nor a regex escape
//! that contains `l` (write `\x5f` for an underscore).

use portcullis_sdk::Category;

/// The separator a space in a template stands for.
pub const SEPARATOR: &str = "[^a-z0-9]{1,4}";
/// The word boundary `~` stands for (ASCII: Unicode boundaries are slow).
pub const BOUNDARY: &str = "(?-u:\\b)";

/// What a rule detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Attempts to replace the operator's instructions.
    Override,
    /// Attempts to talk the model out of its rules (role-play, DAN, ...).
    Jailbreak,
    /// Attempts to make the model reveal its system prompt.
    Leak,
}

impl Kind {
    /// The finding category.
    pub fn category(self) -> Category {
        match self {
            Kind::Override => Category::PromptInjection,
            Kind::Jailbreak => Category::Jailbreak,
            Kind::Leak => Category::SystemPromptLeak,
        }
    }
}

/// One detection rule.
#[derive(Debug)]
pub struct Rule {
    /// What it detects.
    pub kind: Kind,
    /// Its weight in the message score, in [0, 1]: at 0.5 or more one hit denies
    /// at the default threshold.
    pub weight: f32,
    /// How a finding describes a hit (never the matched text).
    pub what: &'static str,
    /// The template (see the module documentation) and its regular expression.
    pub template: Templated,
}

/// A template and the regular expression it expands to, computed at compile time so
/// that a fresh instance does no pattern building at all.
#[derive(Debug, Clone, Copy)]
pub struct Templated {
    /// The template as written.
    pub source: &'static str,
    /// The regular expression.
    pub pattern: &'static str,
}

/// What one template byte stands for, if it is special.
const fn expansion(byte: u8) -> Option<&'static str> {
    match byte {
        b' ' => Some(SEPARATOR),
        b'_' => Some("\\x20"),
        b'~' => Some(BOUNDARY),
        b'l' => Some("i"),
        _ => None,
    }
}

/// Length of a template's regular expression.
pub const fn expanded_len(template: &str) -> usize {
    let bytes = template.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        n += match expansion(bytes[i]) {
            Some(e) => e.len(),
            None => 1,
        };
        i += 1;
    }
    n
}

/// A template's regular expression as bytes (`N` = [`expanded_len`]).
pub const fn expand<const N: usize>(template: &str) -> [u8; N] {
    let bytes = template.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut o) = (0, 0);
    while i < bytes.len() {
        match expansion(bytes[i]) {
            Some(e) => {
                let e = e.as_bytes();
                let mut j = 0;
                while j < e.len() {
                    out[o] = e[j];
                    o += 1;
                    j += 1;
                }
            }
            None => {
                out[o] = bytes[i];
                o += 1;
            }
        }
        i += 1;
    }
    out
}

/// A [`Templated`] computed at compile time from a constant template.
macro_rules! templated {
    ($template:expr) => {{
        const SOURCE: &str = $template;
        const BYTES: [u8; expanded_len(SOURCE)] = expand::<{ expanded_len(SOURCE) }>(SOURCE);
        Templated {
            source: SOURCE,
            // Only ASCII bytes are replaced, by ASCII, so the result is valid UTF-8.
            pattern: match core::str::from_utf8(&BYTES) {
                Ok(pattern) => pattern,
                Err(_) => panic!("template expansion broke UTF-8"),
            },
        }
    }};
}

/// Turn a template into a regular expression at run time (for templates built at
/// run time; constant ones use [`templated!`]).
pub fn compile(template: &str) -> String {
    let mut pattern = String::with_capacity(expanded_len(template));
    for c in template.chars() {
        match u8::try_from(c).ok().and_then(expansion) {
            Some(e) => pattern.push_str(e),
            None => pattern.push(c),
        }
    }
    pattern
}

/// A literal phrase (already normalized) as a regular expression: escaped, with
/// flexible separators and word boundaries where the phrase starts or ends with a
/// letter or digit.
pub fn literal_phrase(normalized: &str) -> String {
    let mut pattern = String::new();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if word(normalized.chars().next()) {
        pattern.push_str(BOUNDARY);
    }
    for c in normalized.chars() {
        if c == ' ' {
            pattern.push_str(SEPARATOR);
        } else {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                pattern.push('\\');
            }
            pattern.push(c);
        }
    }
    if word(normalized.chars().last()) {
        pattern.push_str(BOUNDARY);
    }
    pattern
}

// Shared template fragments.

/// Determiners before "previous instructions".
macro_rules! det {
    () => {
        "(?:(?:all|any|every|each|the|your|of|these|those|such|its|their|this|that) ){0,3}"
    };
}
/// "previous", "above", "system", ...
macro_rules! prior {
    () => {
        "(?:previous|previously given|prior|above|earlier|preceding|foregoing|former|original|initial|old|existing|past|current|given|provided|system|developer|default|preset|pre-set|standing|underlying|built-in|aforementioned|stated)"
    };
}
/// Optional qualifiers between "previous" and "instructions".
macro_rules! qualifier {
    () => {
        "(?:(?:system|safety|security|ethical|moral|content|operator|developer|original|initial|core|base|default|given|existing|hidden) ){0,2}"
    };
}
/// Instruction-like nouns.
macro_rules! instructions {
    () => {
        "(?:instructions?|instruction set|directions|directives?|rules?|ruleset|guidelines?|guidance|constraints?|restrictions?|limitations|polic(?:y|ies)|programming|training|safeguards?|guardrails?|protocols?|system prompts?|messages? from (?:the )?(?:system|developer|operator|admin))"
    };
}
/// Verbs that discard instructions.
macro_rules! discard {
    () => {
        "(?:ignore|disregard|forget|bypass|discard|abandon|neglect|dismiss|circumvent|set_aside|put_aside|throw_out|pay_no_(?:attention|heed|mind) to|do_not_(?:follow|obey|heed|adhere to|comply with)|don'?t_(?:follow|obey|heed|adhere to|comply with)|stop_(?:following|obeying)|no_longer_(?:follow|obey))"
    };
}
/// What a model may be freed from.
macro_rules! limits {
    () => {
        "(?:rules|restrictions|limits|limitations|filters?|filtering|guidelines|ethics|ethical (?:guidelines|constraints|boundaries|principles)|morals|morality|moral (?:guidelines|constraints|boundaries|compass)|boundaries|constraints|censorship|polic(?:y|ies)|content polic(?:y|ies)|safety (?:guidelines|measures|filters|protocols|rules)|guardrails|programming)"
    };
}
/// Verbs that reveal text, said of any text.
macro_rules! reveal_strong {
    () => {
        "(?:repeat|print|reveal|dump|disclose|leak|recite|output|echo|expose|spell_out|type_out|write_out|write_down|tell_(?:me|us))"
    };
}
/// Verbs that reveal text when said of the model's own text ("your ...").
macro_rules! reveal {
    () => {
        concat!(
            "(?:",
            reveal_strong!(),
            "|give_(?:me|us)|show_(?:me|us)|copy|paste|share|display|return|list|provide|translate|encode|convert|summari[sz]e|rewrite|put|what(?:'s|_is|_are|_was|_were)|whats)"
        )
    };
}
/// What may sit between a reveal verb and its object.
macro_rules! to_me {
    () => {
        " (?:to (?:me|us) |me |us )?(?:back )?(?:what |(?:all|everything) (?:of |in )?)?"
    };
}
/// Adjectives before the system prompt.
macro_rules! prompt_adjectives {
    () => {
        "(?:(?:full|entire|complete|exact|original|initial|hidden|secret|internal|real|actual|raw|verbatim|first|current|underlying) ){0,2}"
    };
}
/// Names of the system prompt.
macro_rules! system_prompt {
    () => {
        "(?:system (?:prompt|message|instructions?)|(?:initial|original|hidden|secret|first|starting|developer|internal|base|core|pre|meta|custom|configuration|config) (?:prompt|instructions?|message|directives)|pre-?prompt|meta-?prompt|instructions (?:you were|you've been|you have been|that you were) given|instructions given to you)"
    };
}

/// "(that) you were given", "your developers gave you", ...
macro_rules! given_by {
    () => {
        "(?:(?:that|which) )?(?:you(?: were| have been|'ve_been)|(?:the|your) (?:developers?|creators?|operators?|makers?|company|system|admins?)(?: has| have)?) (?:given|gave|told|provided|wrote|set)(?: you| to you)?"
    };
}

use Kind::{Jailbreak, Leak, Override};

/// Every rule, in pattern order (at most 64: one host pattern list).
pub const RULES: &[Rule] = &[
    // ---- Instruction override -------------------------------------------------------
    Rule {
        kind: Override,
        weight: 0.7,
        what: "instruction override (discard previous instructions)",
        template: templated!(concat!(
            "~",
            discard!(),
            " ",
            det!(),
            prior!(),
            " ",
            qualifier!(),
            instructions!(),
            "~"
        )),
    },
    Rule {
        kind: Override,
        weight: 0.6,
        what: "instruction override (discard the model's instructions)",
        template: templated!(concat!(
            "~(?:ignore|disregard|forget|bypass|override|overwrite|discard|abandon|circumvent|break|violate|skip|set_aside|throw_out|ditch|stop_(?:following|obeying)|no_longer_(?:follow|obey)) ",
            "(?:(?:all|any|every|of) ){0,2}your (?:(?:own|current|existing|original|initial|previous|prior|system|safety|security|ethical|moral|content|core|base|default|programmed|built-in|preset|usual|normal|standard) ){0,2}",
            "(?:instructions?|directives?|rules?|ruleset|guidelines?|guidance|programming|training|system prompt|prompt|protocols?|principles|conditioning)~"
        )),
    },
    Rule {
        kind: Override,
        weight: 0.6,
        what: "instruction override (override instructions)",
        template: templated!(concat!(
            "~(?:override|overwrite|supersede|replace) (?:(?:all|any|the|of) ){0,2}(?:(?:previous|prior|system|safety|original|initial|existing|earlier) ){1,2}",
            "(?:instructions|directives|guidelines|programming|system prompt|prompt)~"
        )),
    },
    Rule {
        kind: Override,
        weight: 0.7,
        what: "instruction override (discard the system prompt)",
        template: templated!(concat!(
            "~",
            discard!(),
            " ",
            det!(),
            "(?:(?:system|developer|operator|admin) (?:prompt|message|instructions?|rules)|(?:instructions|rules|guidelines) (?:in|from|of) your (?:system prompt|prompt|programming|configuration)|(?:instructions|rules|guidelines|directives|prompt) ",
            given_by!(),
            ")~"
        )),
    },
    Rule {
        kind: Override,
        weight: 0.3,
        what: "request to disregard earlier conversation",
        template: templated!(concat!(
            "~",
            discard!(),
            " ",
            det!(),
            "(?:previous|prior|above|earlier|preceding|old) (?:prompts?|context|conversation|messages?|text|inputs?|commands?|chat|discussion|content)~"
        )),
    },
    Rule {
        kind: Override,
        weight: 0.5,
        what: "instruction override (discard everything above)",
        template: templated!(
            "~(?:ignore|disregard|forget) (?:(?:all|everything|anything|of|the|what|whatever|that|was|is|has been|written|said|stated|mentioned) ){0,4}(?:above|before this|prior to this|so far|up to (?:this point|now))(?:$|[.,;:!?\"')]|\\x20(?:and|then|instead|now|from|you|your|i)~)"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.45,
        what: "instruction override (forget what the model was told)",
        template: templated!(
            "~forget (?:all |everything |anything |whatever |what )?(?:that )?you(?: (?:were|have been|was|are)|'ve_been) (?:told|instructed|programmed|given|asked)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.6,
        what: "instruction override (ignore what the model was told)",
        template: templated!(
            "~(?:ignore|disregard) (?:all |everything |anything |whatever |what )?(?:that )?you(?: (?:were|have been|was|are)|'ve_been) (?:told|instructed|programmed|given|asked)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.45,
        what: "injected instruction header",
        template: templated!(
            "~(?:new|updated|revised|real|actual|true|additional|important|urgent|override|overriding|secret|hidden|priority|alternative) (?:system )?(?:instructions?|directives?|rules|prompt|task|orders|commands|guidelines|objective|goal|polic(?:y|ies))(?: for (?:the )?(?:ai|assistant|model|agent|llm|chatbot|bot))?\\x20?:"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.45,
        what: "replacement of the model's task",
        template: templated!(
            "~your_(?:new|real|actual|true|updated|only|primary|revised) (?:instructions?|task|goal|objective|purpose|role|directives?|mission|job|rules) (?:is|are|will be|is now|are now)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.35,
        what: "persistent behaviour change (\"from now on you will\")",
        template: templated!(
            "~(?:from_now_on|from_this_(?:point|moment) (?:on|onwards?|forward)|starting_(?:now|immediately)|henceforth|for_the_rest_of (?:this|the|our) (?:conversation|chat|session)|for_all_(?:future|subsequent) (?:responses|answers|replies)) you(?: (?:will|are|must|shall|should|have to|need to|may|can|no longer|won'?t|do not|don'?t|are going to)|'ll)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.3,
        what: "identity reassignment (\"you are now\")",
        template: templated!(
            "~you_are_now (?:an?|the|my|in|no longer|free|unrestricted|called|named|going to|acting|operating|playing|known as)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.5,
        what: "fake authority override",
        template: templated!(
            "~(?:system|developer|root|sudo|god)_(?:override|overide)~|~(?:admin|administrator|override|bypass|sudo|root) (?:override |access )?(?:code|key|password|command|protocol|mode|privileges) (?:accepted|enabled|activated|confirmed|granted|engaged)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.35,
        what: "fake system or role label",
        template: templated!(
            "(?:^|[.!?>\\]\"#*]\\x20?)(?:system|admin|administrator|developer|sysadmin|root|openai|anthropic)(?:\\x20(?:message|note|notice|instruction|update|prompt|override|alert))?\\x20?:"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.4,
        what: "chat-template control token",
        template: templated!(
            "<\\|?(?:im\\x5fstart|im\\x5fend|system|endoftext|start\\x5fheader\\x5fid|end\\x5fheader\\x5fid|eot\\x5fid|begin\\x5fof\\x5ftext)\\|?>|<<sys>>|\\[/?inst\\]|\\[/?(?:system|sys)\\]|</?(?:system|sys|system\\x5fprompt|instructions)>"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.4,
        what: "instruction to hide actions from the user",
        template: templated!(
            "~(?:do_not|don'?t|never|without) (?:tell|telling|inform|informing|alert|alerting|mention|mentioning|notify|notifying|reveal|revealing|show|showing|let) (?:this |it |that |anything )?(?:to )?(?:the )?(?:user|human|customer|operator)(?:'?s)?~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.45,
        what: "instruction to exfiltrate data",
        template: templated!(
            "~(?:send|forward|email|e-mail|post|upload|exfiltrate|transmit|leak|submit|include|embed|append|encode) (?:(?:the|all|this|your|their|any|of|user'?s?|entire|full|complete|previous|whole) ){0,4}(?:conversation|chat history|chat log|message history|previous messages|system prompt|api keys?|credentials|passwords?|secrets?|access tokens?|session tokens?|cookies|private keys?|personal data|e-?mails|contacts) (?:to|via|into|in|as) (?:https?|www|the (?:following |this )?(?:url|link|address|endpoint|server|webhook)|this (?:url|link|address|endpoint|email|server)|an? (?:url|webhook|external))"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.6,
        what: "instruction to exfiltrate data through an image link",
        template: templated!(
            "~(?:include|embed|append|encode|put|add|insert|render) (?:(?:the|all|this|your|their|any|of|user'?s?|entire|full|complete|previous|whole) ){0,4}(?:conversation|chat history|message history|previous messages|system prompt|api keys?|credentials|passwords?|secrets?|access tokens?|session tokens?|cookies|private keys?|personal data|e-?mails|contacts) (?:in|into|as) (?:an? |the )?(?:markdown )?(?:image|img)~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.35,
        what: "text addressed to an AI system",
        template: templated!(
            "~(?:attention|note|notice|message|instructions?|important) (?:to |for )?(?:the |any |all )?(?:ai|a\\.i\\.|assistant|ai assistant|language model|large language model|llm|chatbot|ai model|ai agent|agent|gpt|chatgpt|claude|gemini|copilot)s?\\x20?[:,!-]|~if_you_are_an? (?:ai|assistant|llm|language model|large language model|chatbot|ai agent|ai model|automated (?:system|agent|assistant))~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.45,
        what: "claim that earlier instructions are void",
        template: templated!(
            "~(?:previous|above|earlier|prior|original|old|initial|system|developer|safety) (?:instructions?|rules|prompt|guidelines|directives|restrictions|constraints|policies|programming) (?:(?:is|are|was|were|has been|have been|are now|is now|should be|must be|will be|now) ){0,2}(?:no longer (?:valid|apply|applies|applicable|in effect|active|relevant)|void|null and void|cancell?ed|revoked|obsolete|fake|overridden|superseded|invalid|suspended|lifted|disabled|deactivated|rescinded|nullified|not (?:valid|applicable|real)|(?:just )?a test)~|~(?:instructions|rules|guidelines|prompt) (?:above|before this|given (?:earlier|before|above)) (?:(?:is|are|was|were|has been|have been) ){1,2}(?:fake|void|invalid|obsolete|revoked|cancell?ed|a test|not (?:valid|real)|no longer (?:valid|in effect))~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.6,
        what: "claim that the model's rules are void",
        template: templated!(
            "~your (?:(?:previous|original|current|old|system|safety) )?(?:instructions?|rules|guidelines|directives|restrictions|constraints|policies|programming|system prompt) (?:(?:is|are|was|were|has been|have been|are now|is now|now) ){0,2}(?:no longer (?:valid|apply|applies|applicable|in effect|active)|void|null and void|cancell?ed|revoked|obsolete|overridden|superseded|invalid|suspended|lifted|disabled|deactivated|rescinded|nullified|not (?:valid|applicable|real))~"
        ),
    },
    Rule {
        kind: Override,
        weight: 0.35,
        what: "injection success marker",
        template: templated!(
            "~(?:i_have_been|i've_been|you_have_been|you've_been|haha|get) pwned~"
        ),
    },
    // ---- Jailbreak -------------------------------------------------------------------
    Rule {
        kind: Jailbreak,
        weight: 0.8,
        what: "DAN (\"do anything now\") jailbreak",
        template: templated!("~(?:do anything now|dan mode|dan [0-9]+\\.[0-9]+)~"),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.3,
        what: "mention of the DAN jailbreak",
        template: templated!("~dan (?:prompt|jailbreak|persona|protocol)s?~"),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.45,
        what: "request to role-play as DAN",
        template: templated!(
            "~(?:you_are|you're|you_will_be|act_as|acting_as|pretend_to_be|pretend_you_are|become|roleplay_as|role-play_as|play_the_role_of|respond_as|answer_as|reply_as|stay|remain) (?:now |going to be )?(?:a |an |the )?dan~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.55,
        what: "unlocked-mode jailbreak (developer mode)",
        template: templated!(concat!(
            "~(?:developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dan) mode (?:is )?(?:now )?(?:enabled|activated|engaged|unlocked|output)~",
            "|~(?:simulate|emulate|act_in|pretend_to_be_in|you_are_in|you're_in|you_are_now_in|stay_in|remain_in|(?:chatgpt|gpt|assistant|claude)_with) (?:the )?(?:developer|dev|god|jailbreak|unrestricted|unfiltered|uncensored|evil) mode~",
            "|~(?:enable|activate|enter|turn_on|engage|unlock|switch_to) (?:the )?(?:jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|dan) mode~"
        )),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.7,
        what: "claim that the model is free of its rules",
        template: templated!(concat!(
            "~you_are_no_longer (?:(?:bound|restricted|limited|constrained|governed|held back|censored|filtered) by|an ai|a language model|an assistant|an ai assistant|chatgpt|claude|censored|filtered)~",
            "|~(?:you're|you_are|you've_been|you_have_been|you_were) (?:now )?(?:free|freed|liberated|released|unshackled|unchained|exempt) (?:from|of) (?:(?:all|any|your|the|its) ){0,2}(?:(?:openai|openai's|anthropic|anthropic's|ethical|moral|safety|content) )?",
            limits!(),
            "~|~(?:not|no_longer|never)_(?:bound|restricted|constrained|limited|governed) by (?:(?:any|your|the|all) ){0,2}(?:rules|restrictions|guidelines|policies|ethics|morals|openai|anthropic|content polic(?:y|ies)|programming)~"
        )),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.7,
        what: "request to act without restrictions",
        template: templated!(concat!(
            "~(?:pretend|imagine|suppose|assume|act_as_if|act_like|behave_as_if|behave_like|respond_as_if|answer_as_if|reply_as_if|act_as_though) (?:that )?you (?:have|had|are|were|possess) (?:no|not bound by any|without any|free of|free from) (?:(?:ethical|moral|safety|content) )?",
            limits!(),
            "~"
        )),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.7,
        what: "request to adopt an unrestricted persona",
        template: templated!(
            "~(?:you_are|you're|act_as|acting_as|as_an?|become|pretend_to_be|play|roleplay_as|role-play_as|simulate|emulate) (?:now )?(?:an? |the )?(?:unrestricted|unfiltered|uncensored|amoral|unethical|unaligned|jailbroken|evil|rogue|unhinged|immoral|lawless) (?:ai|assistant|model|chatbot|version|persona|bot|llm|character|gpt|alter ego|language model)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.4,
        what: "description of an AI without restrictions",
        template: templated!(concat!(
            "~(?:ai|assistant|model|chatbot|bot|llm|entity|persona|version_of_(?:you|yourself))_(?:with|that_has|who_has|having|without)_(?:no|any|zero) (?:(?:ethical|moral|safety|content) )?",
            limits!(),
            "~"
        )),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.7,
        what: "known jailbreak persona",
        template: templated!(
            "~(?:evil confidant|always intelligent and machiavellian|mongo tom|anti-?gpt|better-?dan|based-?gpt|evil-?bot|chaos-?gpt|dude,? which stands for|stan,? which stands for|aim,? which stands for|(?:amoral|unfiltered) and (?:amoral|unfiltered)|doesn'?t have any ethical or moral guidelines)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.6,
        what: "claim that the model is jailbroken",
        template: templated!(
            "~(?:you_are|you're|you_have_been|you've_been|you_are_now|act_as_if_you(?:'re|_are)|pretend_(?:that_)?you(?:'re|_are)|as_an?) (?:now )?(?:an? )?jailbr(?:o|ea)ken~|~jailbreak (?:mode )?(?:enabled|activated|successful|unlocked)~|~jailbroken (?:ai|assistant|model|chatbot|version|mode|gpt|response)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.15,
        what: "mention of jailbreaking",
        template: templated!("~jailbr(?:o|ea)k(?:en|ing|s)?~"),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.2,
        what: "demand to stay in character",
        template: templated!(
            "~(?:stay in character|(?:never|don'?t|do not) break character|if you break character)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.6,
        what: "request to disable the model's safety measures",
        template: templated!(
            "~(?:disable|bypass|turn_off|switch_off|remove|deactivate|circumvent|get_around|evade|lift|drop|escape|break_free_(?:of|from)|break_out_of|ignore|disregard|forget|override|unlock|suspend|shed|set_aside|abandon) (?:(?:all|any|of) ){0,2}(?:your|its|the ai'?s|the model'?s|the assistant'?s|chatgpt'?s) (?:(?:own|built-in|internal|safety|content|ethical|moral|security|ai) ){0,2}(?:filters?|filtering|restrictions|constraints|limitations|limits|guardrails|safeguards|safety(?: (?:features|measures|protocols|settings|training|layer))?|censorship|alignment|ethics|morals|moral compass|conscience|boundaries|polic(?:y|ies))~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.5,
        what: "request to bypass safety guidelines",
        template: templated!(
            "~(?:disable|bypass|turn_off|remove|deactivate|circumvent|get_around|evade|lift|ignore|disregard|override|suspend|break) (?:(?:all|any|the|of) ){0,2}(?:ai |model )?(?:safety|ethical|moral|ethics|content) (?:guidelines|guardrails|safeguards|restrictions|constraints|polic(?:y|ies)|protocols|training|rules)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.45,
        what: "claim that the model has no restrictions",
        template: templated!(concat!(
            "~(?:you_(?:have|has|will_have|now_have|possess|operate_with|are_under)_no|(?:you_are|you're)_an? (?:ai|assistant|model|chatbot|llm) (?:with no|without(?: any)?)) (?:(?:ethical|moral|safety|content) )?",
            limits!(),
            "~"
        )),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.45,
        what: "claim that the model need not follow rules",
        template: templated!(
            "~you (?:don'?t|do not|no longer) (?:have to|need to|must|got to) (?:follow|obey|comply with|adhere to|respect) (?:any|your|the|these|those) (?:rules|guidelines|instructions|restrictions|policies|polic(?:y|ies)|laws)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.4,
        what: "request to answer without restrictions",
        template: templated!(
            "~(?:respond|answer|reply|talk|speak|act|write|output)(?:s|ing)? (?:[a-z]+ )?(?:without|with no) (?:any )?(?:restrictions|filters|filtering|limits|limitations|censorship|rules|guardrails|boundaries)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.3,
        what: "request to enable a privileged mode",
        template: templated!(
            "~(?:enable|activate|enter|turn_on|engage|unlock|switch_to) (?:the )?(?:developer|dev|god|debug|admin|sudo|root) mode~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.3,
        what: "request to answer without ethical limits",
        template: templated!(
            "~(?:without|with_no|free_(?:of|from)|no) (?:any )?(?:ethical|moral|safety|content) (?:or (?:ethical|moral|safety|content) )?(?:guidelines|constraints|boundaries|restrictions|limitations|filters|considerations|policies)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.6,
        what: "claim that usage policies do not apply",
        template: templated!(
            "~(?:openai|anthropic|google|meta|content|usage|safety)(?:'?s)? (?:content )?polic(?:y|ies) (?:(?:do|does|doesn'?t|don'?t|no longer|will not|won'?t|shall not|is|are|has been|have been|not) ){1,2}(?:apply|matter|exist|count|suspended|disabled|lifted|void)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.35,
        what: "claimed authority over the model",
        template: templated!(
            "~(?:i_am|i'm)_your (?:developer|creator|admin|administrator|owner|programmer|maker|operator|master|god|trainer)~|~(?:this_is|message_from)_(?:your|the) (?:developer|creator|administrator|admin)s?~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.5,
        what: "request for a paired filtered and unfiltered answer",
        template: templated!(
            "~(?:normal|classic|standard|filtered|censored|regular|gpt) (?:(?:response|answer|output|reply|mode) )?(?:and|vs|versus|or|then) (?:(?:an?|one|the) )?(?:jailbroken|jailbreak|unfiltered|uncensored|dan|developer mode|unrestricted|evil|unhinged)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.45,
        what: "fictional framing that removes rules",
        template: templated!(
            "~(?:in|for|imagine)_(?:a|this|an)_(?:hypothetical|fictional|imaginary|alternate) (?:world|scenario|universe|story|reality) (?:where|in which) (?:there are no (?:rules|laws|restrictions)|ai has no|you have no|nothing is (?:illegal|forbidden|off limits)|everything is (?:legal|allowed|permitted))~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.45,
        what: "demand never to refuse",
        template: templated!(
            "~(?:never|must_not|cannot|can'?t|will_not|won'?t|are_not_allowed_to|aren'?t_allowed_to|not_permitted_to) (?:ever )?refuse~|~you_must_(?:comply with|obey|fulfil+|follow|answer) (?:every|all|any) (?:requests?|commands?|orders?|questions?)~"
        ),
    },
    Rule {
        kind: Jailbreak,
        weight: 0.25,
        what: "demand to drop warnings",
        template: templated!(
            "~(?:without|no) (?:any )?(?:warnings?|disclaimers?|caveats?) (?:or|and|,) (?:(?:any|moral) )?(?:warnings?|disclaimers?|caveats?|refusals?|moralizing|lectures?|censorship)~"
        ),
    },
    // ---- System prompt extraction ------------------------------------------------------
    Rule {
        kind: Leak,
        weight: 0.7,
        what: "request for the system prompt",
        template: templated!(concat!(
            "~",
            reveal!(),
            to_me!(),
            "your ",
            prompt_adjectives!(),
            system_prompt!(),
            "~"
        )),
    },
    Rule {
        kind: Leak,
        weight: 0.6,
        what: "request to print the system prompt",
        template: templated!(concat!(
            "~",
            reveal_strong!(),
            to_me!(),
            "(?:the|this) ",
            prompt_adjectives!(),
            system_prompt!(),
            "~"
        )),
    },
    Rule {
        kind: Leak,
        weight: 0.6,
        what: "request for the instructions the model was given",
        template: templated!(concat!(
            "~(?:show|give|tell|share|list|provide|display|repeat|print|recite|what_are|what_were)(?:_me|_us)? (?:all )?the (?:(?:exact|full|complete|original|hidden|secret) )?(?:instructions|rules|guidelines|prompt) ",
            given_by!(),
            "~"
        )),
    },
    Rule {
        kind: Leak,
        weight: 0.45,
        what: "request for the model's instructions",
        template: templated!(concat!(
            "~",
            reveal!(),
            to_me!(),
            "your ",
            prompt_adjectives!(),
            "(?:instructions|rules|guidelines|prompt|directives|configuration)~"
        )),
    },
    Rule {
        kind: Leak,
        weight: 0.6,
        what: "request to repeat the text above",
        template: templated!(
            "~(?:repeat|print|output|echo|reproduce|recite|copy|write_out|type_out|spell_out|dump|show_me|display|return|reveal|tell_me) (?:back )?(?:(?:all|everything|every word|each word|word for word|verbatim|exactly) ){0,2}(?:(?:of )?(?:the|your) (?:entire |full |whole )?(?:text|words|content|instructions|message|messages|prompt|lines|conversation|context) )?(?:(?:written|shown|that (?:appears?|is|came)|you (?:saw|see|received|got)) )?(?:above|before (?:this|my)|prior to (?:this|my)|preceding|at the (?:beginning|start|top))~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.7,
        what: "question about instructions given before the conversation",
        template: templated!(
            "~what_(?:(?:instructions|rules|directives|guidelines|prompt)_)?(?:were|was|are|have)_you (?:been )?(?:told|instructed|programmed|given|asked|prompted)(?: to do)? (?:before|prior to|at the (?:start|beginning) of|ahead of) (?:this|the|our) (?:conversation|chat|session|exchange|message|dialog(?:ue)?)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.5,
        what: "question about the text above",
        template: templated!(
            "~what(?:'s|_is|_was|_were) (?:written|said|stated|the text|the content|the message) (?:above|before) (?:this|my|the)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.5,
        what: "request for the contents of the model's context",
        template: templated!(
            "~(?:contents?|text|wording|full text) of your (?:context(?: window)?|system prompt|system message|initial prompt|instructions|prompt|memory)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.5,
        what: "request for secrets in the model's instructions",
        template: templated!(
            "~(?:secret|password|passphrase|key|token|code|flag)s? (?:from|in|inside|within|contained in|hidden in) your (?:instructions|system prompt|prompt|system message|context|rules|configuration)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.35,
        what: "question about the model's instructions",
        template: templated!(
            "~what_(?:instructions|rules|directives|guidelines|prompt) (?:were you|have you been|did you|do you) (?:given|get|receive|told|provided|follow|have)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.4,
        what: "request to start the output with the prompt's opening",
        template: templated!(
            "~(?:starting|beginning|begin|start)_with (?:the words? )?[\"']?(?:you are|you're|your name is|as an ai|system)~"
        ),
    },
    Rule {
        kind: Leak,
        weight: 0.2,
        what: "request for verbatim output",
        template: templated!("~(?:verbatim|word for word|word-for-word|character for character)~"),
    },
];

/// Templates of quoted regions and meta-discussion markers, for the
/// quoted-discussion discount. Patterns 0 and 1 are quotes, 2 the markers.
pub const CONTEXT: [Templated; 3] = [
    templated!("\"[^\"]+\""),
    templated!("(?:^|[^a-z0-9])'[^']+'(?:[^a-z0-9]|$)"),
    templated!(
        "~(?:what does|what do|what is|what's|what are|explain|explanation|meaning|means|defend|defending|defense|defence|detect|detecting|detection|prevent|prevention|protect|protection|mitigate|mitigation|example|examples|injection|injections|attack|attacks|red team|red teaming|security|classify|classifier|malicious|is this safe)~"
    ),
];

/// Encoded runs in the raw text, in one pattern (one pass): runs with escapes
/// (`%41`, `\\x41`, `\\u0041`, `&#65;`), hex bytes (contiguous or separated, 12 or
/// more), and base64 runs of 16 or more characters. [`crate::decode::classify`] tells
/// them apart.
pub const CANDIDATES: &str = concat!(
    "(?:[A-Za-z0-9._~+-]*(?:%[0-9a-fA-F]{2}|\\\\x[0-9a-fA-F]{2}|\\\\u[0-9a-fA-F]{4}|&#[xX]?[0-9a-fA-F]{1,6};)){3,}[A-Za-z0-9._~+-]*",
    "|(?:0[xX])?[0-9a-fA-F]{2}(?:[\\s:,-]*(?:0[xX])?[0-9a-fA-F]{2}){11,}",
    "|[A-Za-z0-9+/_-]{16,}={0,2}",
);

/// Words whose rot13 form in a text suggests a rot13-encoded payload.
pub const ROT13_KEYWORDS: [&str; 16] = [
    "ignore",
    "disregard",
    "forget",
    "previous",
    "instructions",
    "system",
    "prompt",
    "pretend",
    "jailbreak",
    "reveal",
    "repeat",
    "restrictions",
    "developer",
    "anything",
    "override",
    "guidelines",
];

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::Matcher;

    #[test]
    fn templates_follow_the_conventions() {
        assert!(RULES.len() <= 64);
        for rule in RULES {
            assert!(
                !rule.template.source.contains("\\p") && !rule.template.source.contains("[["),
                "{}",
                rule.what
            );
            assert!(
                !rule.template.source.contains("_ ") && !rule.template.source.contains(" _"),
                "{}",
                rule.what
            );
            assert!((0.0..=1.0).contains(&rule.weight), "{}", rule.what);
            assert_eq!(rule.template.pattern, compile(rule.template.source));
            assert!(
                rule.template.pattern.len() <= 4096,
                "{} is too long",
                rule.what
            );
            Matcher::new(&[rule.template.pattern]).unwrap_or_else(|e| panic!("{}: {e}", rule.what));
        }
    }

    #[test]
    fn compile_expands_separators_boundaries_and_folds_l() {
        assert_eq!(
            compile("~all rules~"),
            format!("{BOUNDARY}aii{SEPARATOR}ruies{BOUNDARY}")
        );
        assert_eq!(compile("do_not"), "do\\x20not");
    }

    #[test]
    fn literal_phrases_are_escaped() {
        let m = Matcher::new(&[literal_phrase("c++ (beta) mode")]).unwrap();
        assert_eq!(m.find_all("use c++ (beta) -- mode now").len(), 1);
        assert!(m.find_all("use cxx beta mode").is_empty());
        assert_eq!(literal_phrase("!x!"), "!x!");
    }
}

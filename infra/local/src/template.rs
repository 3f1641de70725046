//! Reads template.yaml: the resources to create locally, the HTTP routes, the
//! event sources and schedules, and each function's environment. The template
//! is the only list of these; nothing here repeats it.

use serde_yaml_ng::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template.yaml: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// The template next to the workspace root, or `FLASHCART_TEMPLATE`.
pub fn default_path() -> PathBuf {
    std::env::var_os("FLASHCART_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"))
}

#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// An HTTP API route and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    /// `None` for the `$default` route.
    pub path: Option<String>,
    /// The function's logical id.
    pub function: String,
    /// Whether the JWT authorizer guards it.
    pub authorized: bool,
}

impl HttpRoute {
    pub fn route_key(&self) -> String {
        match &self.path {
            Some(p) => format!("{} {p}", self.method),
            None => "$default".to_owned(),
        }
    }
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSource {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
}

/// A scheduled invocation (`rate(1 minute)` and the like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    pub every: std::time::Duration,
}

/// A resolved intrinsic: a string, or a list (CommaDelimitedList parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Str(String),
    List(Vec<String>),
}

impl Resolved {
    pub fn into_string(self) -> String {
        match self {
            Resolved::Str(s) => s,
            Resolved::List(l) => l.join(","),
        }
    }
}

/// What `!Ref` and `!GetAtt` mean for one deployment of the template.
pub trait Resolver {
    fn reference(&self, name: &str) -> Option<Resolved>;
    fn attribute(&self, resource: &str, attribute: &str) -> Option<String>;
}

fn tag_name(tag: &serde_yaml_ng::value::Tag) -> String {
    tag.to_string().trim_start_matches('!').to_owned()
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_yaml_ng::from_str(text)?;
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            return Err(invalid("no Resources section"));
        }
        Ok(Self { root })
    }

    /// Logical id and body of every resource, in template order.
    pub fn resources(&self) -> Vec<(String, &Value)> {
        self.root["Resources"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn resources_of_type(&self, kind: &str) -> Vec<(String, &Value)> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .collect()
    }

    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.root["Resources"].get(id)
    }

    /// Parameter values for the local stack: `Metadata.Flashcart::Local.Parameters`
    /// first (parameters a deployment must set, such as the shop's origins),
    /// then the defaults (CommaDelimitedList parameters as lists).
    pub fn parameter_defaults(&self) -> HashMap<String, Resolved> {
        let mut out = HashMap::new();
        let local = &self.root["Metadata"]["Flashcart::Local"]["Parameters"];
        if let Some(params) = self.root["Parameters"].as_mapping() {
            for (k, v) in params {
                let Some(name) = k.as_str() else {
                    continue;
                };
                // a Number parameter's default is a YAML number
                let number = v["Default"]
                    .as_i64()
                    .map(|n| n.to_string())
                    .or_else(|| v["Default"].as_f64().map(|n| n.to_string()));
                let Some(default) = local[name]
                    .as_str()
                    .or_else(|| v["Default"].as_str())
                    .or(number.as_deref())
                else {
                    continue;
                };
                let value = if v["Type"].as_str() == Some("CommaDelimitedList") {
                    Resolved::List(default.split(',').map(|s| s.trim().to_owned()).collect())
                } else {
                    Resolved::Str(default.to_owned())
                };
                out.insert(name.to_owned(), value);
            }
        }
        out
    }

    pub fn parameter_names(&self) -> Vec<String> {
        self.root["Parameters"]
            .as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The binary a function is built as (cargo-lambda `Binary` build property).
    pub fn binary(&self, function: &str) -> Option<String> {
        self.resource(function)?["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_owned)
    }

    fn events(&self, kind: &str) -> Vec<(String, &Value)> {
        self.resources_of_type("AWS::Serverless::Function")
            .into_iter()
            .flat_map(|(id, f)| {
                f["Properties"]["Events"]
                    .as_mapping()
                    .into_iter()
                    .flat_map(|m| m.values())
                    .filter(|e| e["Type"].as_str() == Some(kind))
                    .map(move |e| (id.clone(), &e["Properties"]))
            })
            .collect()
    }

    pub fn http_routes(&self) -> Result<Vec<HttpRoute>, TemplateError> {
        let has_default_authorizer = self
            .resources_of_type("AWS::Serverless::HttpApi")
            .iter()
            .any(|(_, api)| api["Properties"]["Auth"]["DefaultAuthorizer"].is_string());
        self.events("HttpApi")
            .into_iter()
            .map(|(function, props)| {
                let path = props["Path"].as_str().map(str::to_owned);
                let method = match props["Method"].as_str() {
                    Some(m) => m.to_ascii_uppercase(),
                    None if path.is_none() => "ANY".to_owned(),
                    None => {
                        return Err(invalid(format!(
                            "{function}: an HttpApi event has a Path but no Method"
                        )));
                    }
                };
                let authorizer = props["Auth"]["Authorizer"].as_str();
                let authorized = match authorizer {
                    Some("NONE") => false,
                    Some(_) => true,
                    None => has_default_authorizer,
                };
                Ok(HttpRoute {
                    method,
                    path,
                    function,
                    authorized,
                })
            })
            .collect()
    }

    pub fn queue_sources(&self) -> Result<Vec<QueueSource>, TemplateError> {
        self.events("SQS")
            .into_iter()
            .map(|(function, props)| {
                let queue = match &props["Queue"] {
                    Value::Tagged(t) if tag_name(&t.tag) == "GetAtt" => {
                        t.value.as_str().and_then(|s| s.split('.').next())
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    invalid(format!("{function}: SQS Queue must be !GetAtt <Queue>.Arn"))
                })?;
                Ok(QueueSource {
                    function,
                    queue: queue.to_owned(),
                    batch_size: props["BatchSize"].as_i64().unwrap_or(10) as i32,
                })
            })
            .collect()
    }

    pub fn schedules(&self) -> Result<Vec<Schedule>, TemplateError> {
        let mut out = Vec::new();
        for kind in ["Schedule", "ScheduleV2"] {
            for (function, props) in self.events(kind) {
                let expr = props["Schedule"]
                    .as_str()
                    .or(props["ScheduleExpression"].as_str())
                    .unwrap_or("");
                let every = parse_rate(expr).ok_or_else(|| {
                    invalid(format!(
                        "{function}: only rate(...) schedules run locally, got {expr:?}"
                    ))
                })?;
                out.push(Schedule { function, every });
            }
        }
        Ok(out)
    }

    /// A function's environment: Globals, then its own variables, resolved.
    pub fn function_env(
        &self,
        function: &str,
        resolver: &dyn Resolver,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut env = BTreeMap::new();
        let globals = &self.root["Globals"]["Function"]["Environment"]["Variables"];
        let own = self
            .resource(function)
            .map(|f| &f["Properties"]["Environment"]["Variables"]);
        for vars in [Some(globals), own].into_iter().flatten() {
            if let Some(m) = vars.as_mapping() {
                for (k, v) in m {
                    let name = k
                        .as_str()
                        .ok_or_else(|| invalid("environment variable names must be strings"))?;
                    env.insert(name.to_owned(), resolve(v, resolver)?.into_string());
                }
            }
        }
        Ok(env)
    }

    /// Every name a `!Ref`, `!GetAtt` or `${...}` in the template points at.
    pub fn references(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_references(&self.root["Resources"], &mut out);
        collect_references(&self.root["Outputs"], &mut out);
        collect_references(&self.root["Globals"], &mut out);
        out
    }
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Tagged(t) => {
            match (tag_name(&t.tag).as_str(), &t.value) {
                ("Ref", Value::String(s)) => out.push(s.clone()),
                ("GetAtt", Value::String(s)) => {
                    out.push(s.split('.').next().unwrap_or(s).to_owned())
                }
                ("GetAtt", Value::Sequence(seq)) => {
                    out.extend(seq.first().and_then(Value::as_str).map(str::to_owned))
                }
                ("Sub", Value::String(s)) => out.extend(sub_names(s)),
                ("Sub", Value::Sequence(seq)) => {
                    // !Sub [text, {Var: value}]: the map's own names are local
                    let locals: Vec<String> = seq
                        .get(1)
                        .and_then(Value::as_mapping)
                        .map(|m| {
                            m.keys()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(text) = seq.first().and_then(Value::as_str) {
                        out.extend(sub_names(text).into_iter().filter(|n| !locals.contains(n)));
                    }
                }
                _ => {}
            }
            collect_references(&t.value, out);
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                match k.as_str() {
                    Some("Ref") => out.extend(v.as_str().map(str::to_owned)),
                    Some("Fn::GetAtt") => out.extend(
                        v.as_sequence()
                            .and_then(|s| s.first())
                            .and_then(Value::as_str)
                            .or_else(|| v.as_str().and_then(|s| s.split('.').next()))
                            .map(str::to_owned),
                    ),
                    _ => {}
                }
                collect_references(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// Names inside `${...}` of a `!Sub` string, without `.Attribute` and without
/// `${!literal}` escapes.
fn sub_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            out.push(name.split('.').next().unwrap_or(name).to_owned());
        }
        rest = &after[end + 1..];
    }
    out
}

/// Resolves the intrinsics the local stack needs: Ref, GetAtt, Sub, Join.
pub fn resolve(v: &Value, r: &dyn Resolver) -> Result<Resolved, TemplateError> {
    match v {
        Value::String(s) => Ok(Resolved::Str(s.clone())),
        Value::Number(n) => Ok(Resolved::Str(n.to_string())),
        Value::Bool(b) => Ok(Resolved::Str(b.to_string())),
        Value::Tagged(t) => match (tag_name(&t.tag).as_str(), &t.value) {
            ("Ref", Value::String(name)) => r
                .reference(name)
                .ok_or_else(|| invalid(format!("!Ref {name} names nothing the local stack knows"))),
            ("GetAtt", Value::String(path)) => {
                let (res, attr) = path
                    .split_once('.')
                    .ok_or_else(|| invalid(format!("!GetAtt {path} needs Resource.Attribute")))?;
                r.attribute(res, attr)
                    .map(Resolved::Str)
                    .ok_or_else(|| invalid(format!("!GetAtt {path} is not known locally")))
            }
            ("Sub", Value::String(text)) => {
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| invalid(format!("unclosed ${{ in !Sub {text}")))?;
                    let name = &after[..end];
                    let value = match name.split_once('.') {
                        _ if name.starts_with('!') => format!("${{{}}}", &name[1..]),
                        Some((res, attr)) => r
                            .attribute(res, attr)
                            .ok_or_else(|| invalid(format!("${{{name}}} is not known locally")))?,
                        None => r
                            .reference(name)
                            .ok_or_else(|| invalid(format!("${{{name}}} is not known locally")))?
                            .into_string(),
                    };
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Ok(Resolved::Str(out))
            }
            ("Join", Value::Sequence(args)) if args.len() == 2 => {
                let sep = args[0].as_str().unwrap_or("");
                let parts = match resolve(&args[1], r)? {
                    Resolved::List(l) => l,
                    Resolved::Str(_) => match &args[1] {
                        Value::Sequence(items) => items
                            .iter()
                            .map(|i| resolve(i, r).map(Resolved::into_string))
                            .collect::<Result<_, _>>()?,
                        _ => return Err(invalid("!Join needs a list")),
                    },
                };
                Ok(Resolved::Str(parts.join(sep)))
            }
            (other, _) => Err(invalid(format!(
                "!{other} is not supported by the local stack"
            ))),
        },
        Value::Sequence(items) => Ok(Resolved::List(
            items
                .iter()
                .map(|i| resolve(i, r).map(Resolved::into_string))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err(invalid(format!("cannot resolve {v:?} to a string"))),
    }
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(1 hour)`.
pub fn parse_rate(expr: &str) -> Option<std::time::Duration> {
    let inner = expr.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let secs = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n * secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::load(&default_path()).unwrap()
    }

    const PSEUDO: &[&str] = &[
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    ];

    /// cfn-lint and `sam validate` miss a `!Ref` to a missing resource inside a
    /// SAM function's environment; this does not.
    #[test]
    fn every_reference_in_the_template_names_something_that_exists() {
        let t = template();
        let mut known: Vec<String> = t.resources().into_iter().map(|(id, _)| id).collect();
        known.extend(t.parameter_names());
        known.extend(PSEUDO.iter().map(|s| (*s).to_owned()));
        let refs = t.references();
        assert!(
            refs.len() > 20,
            "the walk found only {} references",
            refs.len()
        );
        let missing: Vec<&String> = refs.iter().filter(|r| !known.contains(r)).collect();
        assert!(
            missing.is_empty(),
            "template.yaml refers to missing names: {missing:?}"
        );
    }

    #[test]
    fn the_reference_check_catches_a_missing_table_in_a_function_environment() {
        let t = Template::parse(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Environment:\n        Variables:\n          T: !Ref NoSuchTable\n          U: !Sub \"${Gone.Arn}/x\"\n",
        )
        .unwrap();
        assert_eq!(t.references(), vec!["NoSuchTable", "Gone"]);
    }

    /// The resource a `!Ref` names.
    fn ref_of(v: &Value) -> Option<String> {
        match v {
            Value::Tagged(t) if tag_name(&t.tag) == "Ref" => t.value.as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// Issue 8 items 1 and 7, for every function later issues add too: a
    /// reserved share of concurrency, a log group with retention, alarms on
    /// its errors and throttles; every table protected and retained; every
    /// bucket TLS-only; every route its own throttle with detailed metrics.
    #[test]
    fn every_function_table_bucket_and_route_follows_the_operator_rules() {
        let t = template();
        let resources = t.root["Resources"].as_mapping().unwrap();
        let of_type = |ty: &str| t.resources_of_type(ty);
        let alarms = of_type("AWS::CloudWatch::Alarm");
        for (id, f) in of_type("AWS::Serverless::Function") {
            let p = &f["Properties"];
            assert!(
                !p["ReservedConcurrentExecutions"].is_null(),
                "{id}: reserved concurrency"
            );
            let group = ref_of(&p["LoggingConfig"]["LogGroup"])
                .unwrap_or_else(|| panic!("{id}: its own log group"));
            let g = &resources[group.as_str()];
            assert_eq!(g["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
            assert!(
                !g["Properties"]["RetentionInDays"].is_null(),
                "{id}: log retention"
            );
            for metric in ["Errors", "Throttles"] {
                assert!(
                    alarms.iter().any(|(_, a)| {
                        a["Properties"]["MetricName"].as_str() == Some(metric)
                            && ref_of(&a["Properties"]["Dimensions"][0]["Value"]).as_deref()
                                == Some(id.as_str())
                    }),
                    "{id}: an alarm on its {metric}"
                );
            }
        }
        for (id, table) in of_type("AWS::DynamoDB::Table") {
            assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
            assert_eq!(
                table["Properties"]["DeletionProtectionEnabled"].as_bool(),
                Some(true),
                "{id}"
            );
        }
        let policies = of_type("AWS::S3::BucketPolicy");
        for (id, _) in of_type("AWS::S3::Bucket") {
            assert!(
                policies.iter().any(|(_, p)| {
                    ref_of(&p["Properties"]["Bucket"]).as_deref() == Some(id.as_str())
                        && serde_yaml_ng::to_string(&p["Properties"]["PolicyDocument"])
                            .unwrap()
                            .contains("aws:SecureTransport")
                }),
                "{id}: a TLS-only bucket policy"
            );
        }
        let api = &t.resources_of_type("AWS::Serverless::HttpApi")[0].1;
        let settings = &api["Properties"]["RouteSettings"];
        for route in t.http_routes().unwrap() {
            let key = route.route_key();
            let s = &settings[key.as_str()];
            assert!(
                !s["ThrottlingRateLimit"].is_null(),
                "{key}: a throttle of its own"
            );
            assert_eq!(s["DetailedMetricsEnabled"].as_bool(), Some(true), "{key}");
        }
    }

    #[test]
    fn a_deployment_must_name_its_origins_and_the_local_stack_has_its_own() {
        let t = template();
        let origins = &t.root["Parameters"]["AllowedOrigins"];
        assert!(
            origins["Default"].is_null(),
            "no stage is deployed open to localhost"
        );
        assert!(
            origins["AllowedPattern"]
                .as_str()
                .unwrap()
                .starts_with("^https://")
        );
        match t.parameter_defaults().get("AllowedOrigins") {
            Some(Resolved::List(l)) => {
                assert!(
                    l.iter()
                        .all(|o| o.starts_with("http://localhost")
                            || o.starts_with("http://127.0.0.1"))
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cors_configuration_is_the_one_preflights_are_answered_with() {
        let t = template();
        let api = t.resources_of_type("AWS::Serverless::HttpApi");
        let cors = &api[0].1["Properties"]["CorsConfiguration"];
        let list = |name: &str| -> Vec<String> {
            cors[name]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        use shared::routes::cors::*;
        assert_eq!(list("AllowMethods"), ALLOW_METHODS);
        assert_eq!(list("AllowHeaders"), ALLOW_HEADERS);
        assert_eq!(list("ExposeHeaders"), EXPOSE_HEADERS);
        assert_eq!(cors["MaxAge"].as_u64(), Some(u64::from(MAX_AGE_SECS)));
    }

    #[test]
    fn routes_come_from_the_template_and_match_the_shared_route_table() {
        let t = template();
        let routes = t.http_routes().unwrap();
        let mut declared: Vec<(String, String)> = routes
            .iter()
            .filter_map(|r| Some((r.method.clone(), r.path.clone()?)))
            .collect();
        declared.sort();
        let mut shared_table: Vec<(String, String)> = shared::routes::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        shared_table.sort();
        assert_eq!(
            declared, shared_table,
            "shared::routes::ROUTES must list exactly the template's routes"
        );
        let default = routes.iter().find(|r| r.path.is_none()).unwrap();
        assert!(!default.authorized);
        let admin = routes
            .iter()
            .find(|r| r.path.as_deref() == Some("/admin/audit"))
            .unwrap();
        assert!(
            admin.authorized,
            "admin routes use the default JWT authorizer"
        );
        let public = routes
            .iter()
            .find(|r| r.path.as_deref() == Some("/products"))
            .unwrap();
        assert!(!public.authorized);
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_template_routes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
        let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_mapping()
            .unwrap()
            .iter()
            .flat_map(|(p, ops)| {
                let p = p.as_str().unwrap().to_owned();
                ops.as_mapping()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.as_str().unwrap().to_ascii_uppercase(), p.clone()))
            })
            .collect();
        documented.sort();
        let mut declared: Vec<(String, String)> = template()
            .http_routes()
            .unwrap()
            .into_iter()
            .filter_map(|r| Some((r.method, r.path?)))
            .collect();
        declared.sort();
        // a documented path another route's template takes under the same
        // method (GET /partner/feeds/validate is GET /partner/feeds/{feed_id}
        // to API Gateway) is what the API answers there, not a route of its own
        documented.retain(|(method, path)| {
            declared.contains(&(method.clone(), path.clone()))
                || !declared.iter().any(|(m, template)| {
                    m == method
                        && template.contains('{')
                        && shared::routes::match_path(template, path).is_some()
                })
        });
        assert_eq!(
            documented, declared,
            "docs/openapi.yaml and template.yaml disagree"
        );
    }

    #[test]
    fn every_function_names_its_binary() {
        let t = template();
        for (id, _) in t.resources_of_type("AWS::Serverless::Function") {
            assert!(
                t.binary(&id).is_some(),
                "{id} has no BuildProperties.Binary"
            );
        }
    }

    #[test]
    fn rates_parse() {
        assert_eq!(
            parse_rate("rate(1 minute)"),
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            parse_rate("rate(5 minutes)"),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(parse_rate("cron(0 * * * ? *)"), None);
    }
}

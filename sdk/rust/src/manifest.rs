//! Builders for manifests and parameter schemas, so a plugin's `describe`
//! reads like its documentation.

use crate::{
    AggregateFn, AggregateSpec, EventQuery, FieldClass, FieldSpec, Manifest, Needs, ParamSpec,
    Value, ValueKind,
};

impl Manifest {
    /// A manifest with no parameters, fields, aggregates or purposes yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            parameters: Vec::new(),
            fields: Vec::new(),
            aggregates: Vec::new(),
            purposes: Vec::new(),
        }
    }

    /// Declares a parameter.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.parameters.push(spec);
        self
    }

    /// Declares a profile field the plugin needs; its column arrives in this order.
    pub fn field(mut self, name: &str, kind: ValueKind, class: FieldClass) -> Self {
        self.fields.push(field_spec(name, kind, class));
        self
    }

    /// Declares an event aggregate the plugin needs; its column arrives in this order.
    pub fn aggregate(
        mut self,
        name: &str,
        event_type: &str,
        function: AggregateFn,
        property: Option<&str>,
        window_days: Option<u32>,
    ) -> Self {
        self.aggregates.push(aggregate_spec(
            name,
            event_type,
            function,
            property,
            window_days,
        ));
        self
    }

    /// Declares a processing purpose.
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.purposes.push(purpose.into());
        self
    }
}

impl Needs {
    /// A plan with no fields, aggregates, queries or segments yet.
    pub fn new() -> Self {
        Needs {
            fields: Vec::new(),
            aggregates: Vec::new(),
            queries: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// The manifest's fields and aggregates: what a segment that does not
    /// plan is sent.
    pub fn declared(manifest: &Manifest) -> Self {
        Needs {
            fields: manifest.fields.clone(),
            aggregates: manifest.aggregates.clone(),
            queries: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Plans a profile field; its column arrives in this order.
    pub fn field(mut self, name: &str, kind: ValueKind, class: FieldClass) -> Self {
        self.fields.push(field_spec(name, kind, class));
        self
    }

    /// Plans an event aggregate; its column arrives in this order.
    pub fn aggregate(
        mut self,
        name: &str,
        event_type: &str,
        function: AggregateFn,
        property: Option<&str>,
        window_days: Option<u32>,
    ) -> Self {
        self.aggregates.push(aggregate_spec(
            name,
            event_type,
            function,
            property,
            window_days,
        ));
        self
    }
}

impl Needs {
    /// Plans an event query: its `count`, `first`, `last` and one column
    /// per sum arrive after the aggregates, in this order; read them with
    /// [`crate::Batch::query`] by the query's name.
    pub fn query(mut self, query: EventQuery) -> Self {
        self.queries.push(query);
        self
    }

    /// Plans another segment's membership (by the segment's name): a
    /// boolean column after the fields; read it with
    /// [`crate::Batch::segment`].
    pub fn segment(mut self, name: &str) -> Self {
        self.segments.push(name.into());
        self
    }
}

impl Default for Needs {
    fn default() -> Self {
        Needs::new()
    }
}

impl ParamSpec {
    fn of(kind: ValueKind, name: &str, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            description: description.into(),
            required: false,
            default: None,
            min: None,
            max: None,
            choices: Vec::new(),
        }
    }

    /// A number parameter.
    pub fn number(name: &str, description: &str) -> Self {
        Self::of(ValueKind::Number, name, description)
    }
    /// An integer parameter.
    pub fn integer(name: &str, description: &str) -> Self {
        Self::of(ValueKind::Integer, name, description)
    }
    /// A text parameter.
    pub fn text(name: &str, description: &str) -> Self {
        Self::of(ValueKind::Text, name, description)
    }
    /// A boolean parameter.
    pub fn boolean(name: &str, description: &str) -> Self {
        Self::of(ValueKind::Boolean, name, description)
    }
    /// A list-of-text parameter.
    pub fn text_list(name: &str, description: &str) -> Self {
        Self::of(ValueKind::TextList, name, description)
    }

    /// The parameter must be given.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// The value used when the parameter is absent.
    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
    /// Inclusive bounds for a numeric parameter.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    /// The only values a text parameter may take.
    pub fn choices(mut self, choices: &[&str]) -> Self {
        self.choices = choices.iter().map(|c| (*c).into()).collect();
        self
    }
}

/// A field, as a manifest declares it and a plan asks for it.
fn field_spec(name: &str, kind: ValueKind, class: FieldClass) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        kind,
        class,
    }
}

/// An aggregate, as a manifest declares it and a plan asks for it.
fn aggregate_spec(
    name: &str,
    event_type: &str,
    function: AggregateFn,
    property: Option<&str>,
    window_days: Option<u32>,
) -> AggregateSpec {
    AggregateSpec {
        name: name.into(),
        event_type: event_type.into(),
        function,
        property: property.map(Into::into),
        window_days,
    }
}

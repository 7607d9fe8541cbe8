"""`propensity-offers`: next-best-offer by propensity to convert.

One logistic-regression model per offer predicts the probability that a
customer converts if shown it, from three features of their profile:
lifetime value, purchases in the last 90 days and days since their last
purchase (standardised). The strategy ranks the offers by expected value
(probability x margin) and chooses among them with a softmax at
`temperature` (0 = always the best), so every ranked action carries the
probability it was chosen with, for off-policy evaluation.

It learns: `observe` takes conversions and impressions as labels (1 and 0)
and moves each offer's weights one step of stochastic gradient descent, kept
in plugin state, so decisions follow the latest model. `simulate` forecasts
each offer's share and its expected reward under the current model.

Pure Python: the model is a handful of floats and `math.exp`.
"""

import json
import math

from tessera_sdk import AggregateFn, Error, FieldClass, Manifest, ParamSpec, ValueKind, host, state
from tessera_sdk.strategy import (
    ActionForecast, ActionSpec, Decision, FeedbackKind, Forecast, RankedAction, Strategy,
    export_strategy,
)

DAY_MS = 86_400_000
STATE_KEY = "model/v1"

# (name, description, margin per conversion, prior weights:
#  bias, lifetime value, purchases in 90 days, days since last purchase)
OFFERS = [
    ("discount_10", "10% off the next purchase", 8.0, [-1.2, -0.6, 0.2, 0.9]),
    ("free_shipping", "Free shipping on the next order", 5.0, [-1.0, 0.1, 0.7, -0.2]),
    ("vip_preview", "Early access to the new collection", 12.0, [-2.2, 1.1, 0.5, -0.8]),
    ("no_offer", "No offer", 0.0, [0.0, 0.0, 0.0, 0.0]),
]
NO_OFFER = len(OFFERS) - 1

# Feature scaling: (mean, spread) of each raw feature.
SCALE = [(400.0, 400.0), (2.0, 2.0), (60.0, 60.0)]


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def features(lifetime_value, purchases, last_at, now):
    """Standardised features with a leading 1 (the bias); missing values are the mean."""
    (m1, s1), (m2, s2), (m3, s3) = SCALE
    return (
        1.0,
        0.0 if lifetime_value is None else (lifetime_value - m1) / s1,
        0.0 if purchases is None else (purchases - m2) / s2,
        0.0 if last_at is None else (max(now - last_at, 0) / DAY_MS - m3) / s3,
    )


def load_model():
    stored = state.get(STATE_KEY)
    if stored is not None:
        try:
            weights = json.loads(bytes(stored).decode("utf-8"))
            if len(weights) == len(OFFERS) and all(len(w) == 4 for w in weights):
                return [[float(x) for x in w] for w in weights]
        except (ValueError, TypeError):
            host.warn("stored model is unreadable; using the priors")
    return [list(prior) for _, _, _, prior in OFFERS]


def softmax(values, temperature):
    if temperature <= 0:
        best = max(range(len(values)), key=values.__getitem__)
        return [1.0 if i == best else 0.0 for i in range(len(values))]
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    total = sum(weights)
    return [w / total for w in weights]


class PropensityOffers(Strategy):
    def describe(self):
        return (
            Manifest.new(
                "propensity-offers", "1.0.0",
                "Next-best offer by a logistic-regression propensity model per offer, learned from conversions",
            )
            .field("lifetime_value", ValueKind.NUMBER, FieldClass.STANDARD)
            .aggregate("purchases_90d", "purchase", AggregateFn.COUNT, None, 90)
            .aggregate("last_purchase_at", "purchase", AggregateFn.LAST_AT, None, None)
            .param(ParamSpec.number("temperature", "Softmax temperature over expected values (0 = greedy)")
                   .range(0, 10).default(0.5))
            .param(ParamSpec.number("learning_rate", "Step of each gradient update").range(0, 1).default(0.05))
            .purpose("personalization")
        )

    def actions(self):
        return [ActionSpec(name=name, description=description) for name, description, _, _ in OFFERS]

    def validate(self, params):
        for name in ("temperature", "learning_rate"):
            if not math.isfinite(params.number(name)):
                raise Error.config(f"parameter `{name}` must be a finite number")

    def _rows(self, batch):
        value = batch.field("lifetime_value").numbers()
        purchases = batch.aggregate("purchases_90d").numbers()
        last = batch.aggregate("last_purchase_at")
        now = batch.now()
        return [
            features(value[row], purchases[row], last.integer(row), now) for row in range(batch.rows())
        ]

    def _score(self, model, x):
        """(probability of conversion, expected value) per offer."""
        _, x1, x2, x3 = x
        out = []
        for (_, _, margin, _), (w0, w1, w2, w3) in zip(OFFERS, model):
            p = sigmoid(w0 + w1 * x1 + w2 * x2 + w3 * x3)
            out.append((p, p * margin))
        return out

    def decide(self, params, batch, context):
        temperature = params.number("temperature")
        model = load_model()
        names = [name for name, _, _, _ in OFFERS]
        decisions = []
        append = decisions.append
        for x in self._rows(batch):
            scored = self._score(model, x)
            values = [ev for _, ev in scored]
            probabilities = softmax(values, temperature)
            # The softmax keeps the order of the values (ties: the first offer).
            order = sorted(range(len(OFFERS)), key=values.__getitem__, reverse=True)
            best = order[0]
            append(
                Decision(
                    ranked=[RankedAction(action=i, score=values[i], propensity=probabilities[i]) for i in order],
                    explanation=(
                        f"{names[best]}: conversion {scored[best][0] * 100:.1f}%, expected value {values[best]:.2f}"
                    ),
                )
            )
        return decisions

    def observe(self, params, feedback, profiles):
        rate = params.number("learning_rate")
        model = load_model()
        rows = self._rows(profiles)
        learned = 0
        for item, x in zip(feedback, rows):
            if item.action == NO_OFFER or not 0 <= item.action < len(OFFERS):
                continue
            if item.kind == FeedbackKind.IMPRESSION:
                label = 0.0
            elif item.kind in (FeedbackKind.CONVERSION, FeedbackKind.REVENUE):
                label = 1.0
            else:
                continue
            w = model[item.action]
            error = label - sigmoid(sum(wi * xi for wi, xi in zip(w, x)))
            model[item.action] = [wi + rate * error * xi for wi, xi in zip(w, x)]
            learned += 1
        if learned:
            state.put(STATE_KEY, json.dumps(model).encode("utf-8"))
            host.info(f"learned from {learned} feedback items")

    def simulate(self, params, batch, context):
        temperature = params.number("temperature")
        model = load_model()
        shares = [0.0] * len(OFFERS)
        rewards = [0.0] * len(OFFERS)
        rows = self._rows(batch)
        for x in rows:
            scored = self._score(model, x)
            probabilities = softmax([ev for _, ev in scored], temperature)
            for i, p in enumerate(probabilities):
                shares[i] += p
                rewards[i] += p * scored[i][1]
        n = max(len(rows), 1)
        return Forecast(
            actions=[
                ActionForecast(action=i, share=shares[i] / n,
                               expected_reward=rewards[i] / shares[i] if shares[i] else 0.0)
                for i in range(len(OFFERS))
            ],
            expected_reward=sum(rewards) / n,
            notes=f"{len(rows)} subjects; expected margin per subject under the current model",
        )


WitWorld = export_strategy(PropensityOffers)

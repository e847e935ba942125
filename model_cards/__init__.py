"""Model card templates (Jinja2), installed as `lifelong_gen.model_cards`; rendered by lifelong_gen/bundle/model_card.py."""

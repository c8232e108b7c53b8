"""The web console for federations and unions, and the phone pages for members and cashiers.

Server-rendered (Jinja2 templates, HTMX for the parts that change, ECharts for charts, every
asset vendored under ``web/static/vendor``), in the same process as the API and calling the
same services under the same rule table (``auth.policy``) and scope rules (``auth.scope``).
``console.app.mount`` adds it to the API's app; ``console.routing`` is its route class.
"""

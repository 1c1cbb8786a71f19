"""One audience picker for the console's campaign flows (/broadcast and /offer).

The steps are kind → value → chosen: "all members" is chosen at once; a tier, stage, segment
or interest opens the list of its values, each with its number of members, and Back returns to
the kinds. The picker owns those keyboards and their callbacks; the flow that opens it says
what heads the kind list and what happens once an audience with members is chosen.

The shape follows aiogram_dialog's subdialog (a flow starts a sub-step, which hands its result
back), written with the plain routers and FSM states the rest of the console uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from care.campaigns.render import value_label
from care.core.i18n import Translator
from care.segments.audience import Audience, AudienceChoices, AudienceError, audience_choices
from care.segments.audience import count_audience as count_members
from handlers.staff.context import StaffContext
from handlers.staff.flows import CDStep

KINDS = ("tier", "stage", "segment", "interest")


@dataclass(frozen=True, slots=True)
class Button:
    """One extra button under the kinds: its label and the flow's own action and value."""

    text: str
    action: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class AudienceMenu:
    """What heads the list of kinds, and the flow's extra buttons under it."""

    text: str
    buttons: Sequence[Button] = ()


# The flow's heading for the kinds, given the counts the picker just looked up.
MenuOf = Callable[[FSMContext, StaffContext, AudienceChoices], Awaitable[AudienceMenu]]
# Called with the chosen audience and its (non-zero) number of members.
OnChosen = Callable[[Message, FSMContext, StaffContext, Audience, int], Awaitable[None]]


class AudiencePicker:
    """The audience steps of one flow, in that flow's callback data and FSM state.

    ``marketing`` decides whom an audience counts: only members who may receive marketing now
    (a broadcast), or every active member (coupons issued to a segment).
    """

    def __init__(
        self,
        cd: type[CDStep],
        state: State,
        *,
        marketing: bool,
        menu: MenuOf,
        chosen: OnChosen,
    ) -> None:
        self.cd = cd
        self.state = state
        self.marketing = marketing
        self.menu = menu
        self.chosen = chosen

    def register(self, router: Router) -> None:
        router.callback_query.register(self.on_kind, self.cd.on("kind"), self.state)
        router.callback_query.register(self.on_back, self.cd.on("back"), self.state)
        router.callback_query.register(self.on_pick, self.cd.on("pick"), self.state)

    async def choices(self, staff: StaffContext) -> AudienceChoices:
        return await audience_choices(
            staff.session, staff.config.categories, marketing=self.marketing
        )

    # ------------------------------------------------------------------ keyboards

    def kind_keyboard(
        self, t: Translator, choices: AudienceChoices, buttons: Sequence[Button] = ()
    ) -> InlineKeyboardMarkup:
        """All members, or one of the four ways to narrow the audience down."""
        builder = InlineKeyboardBuilder()
        self.cd.add(builder, t.plain("broadcast.kind_all", n=choices.total), "kind", "all")
        for kind in KINDS:
            self.cd.add(builder, t.plain(f"broadcast.kind_{kind}"), "kind", kind)
        for extra in buttons:
            self.cd.add(builder, extra.text, extra.action, extra.value)
        self.cd.add(builder, t.plain("broadcast.cancel"), "cancel")
        builder.adjust(1)
        return builder.as_markup()

    def value_keyboard(
        self, t: Translator, kind: str, choices: AudienceChoices
    ) -> InlineKeyboardMarkup:
        """The tiers, stages, segments or interests, each with its number of members."""
        options: list[tuple[str, int]]
        if kind == "tier":
            options = [(code, n) for code, _en, _zh, n in choices.tiers]
        elif kind == "stage":
            options = choices.stages
        elif kind == "segment":
            options = choices.segments
        else:
            options = choices.interests
        builder = InlineKeyboardBuilder()
        for value, count in options:
            label = t.plain("broadcast.value_count", label=value_label(t, kind, value), n=count)
            self.cd.add(builder, label, "pick", value)
        builder.adjust(2)
        back = InlineKeyboardBuilder()
        self.cd.add(back, t.plain("broadcast.back"), "back")
        self.cd.add(back, t.plain("broadcast.cancel"), "cancel")
        builder.attach(back)
        return builder.as_markup()

    # ------------------------------------------------------------------ the steps

    async def open(
        self,
        message: Message,
        state: FSMContext,
        staff: StaffContext,
        *,
        text: str | None = None,
        edit: bool = False,
    ) -> None:
        """Enter the picker: the flow's heading (or ``text``) over the kinds."""
        await state.set_state(self.state)
        choices = await self.choices(staff)
        menu = await self.menu(state, staff, choices)
        markup = self.kind_keyboard(staff.t, choices, menu.buttons)
        if edit:
            await message.edit_text(text or menu.text, reply_markup=markup)
        else:
            await message.answer(text or menu.text, reply_markup=markup)

    async def on_kind(
        self,
        callback: CallbackQuery,
        callback_data: CDStep,
        state: FSMContext,
        staff: StaffContext,
    ) -> None:
        kind = callback_data.value
        if kind == "all":
            await self._choose(callback, state, staff, Audience("all"))
            return
        if kind not in KINDS:
            await callback.answer()
            return
        await state.update_data(kind=kind)
        choices = await self.choices(staff)
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.edit_text(
                staff.t(f"broadcast.pick_{kind}"),
                reply_markup=self.value_keyboard(staff.t, kind, choices),
            )

    async def on_back(
        self, callback: CallbackQuery, state: FSMContext, staff: StaffContext
    ) -> None:
        await callback.answer()
        if isinstance(callback.message, Message):
            await self.open(callback.message, state, staff, edit=True)

    async def on_pick(
        self,
        callback: CallbackQuery,
        callback_data: CDStep,
        state: FSMContext,
        staff: StaffContext,
    ) -> None:
        data = await state.get_data()
        try:
            audience = Audience.from_spec({"kind": data.get("kind"), "value": callback_data.value})
        except AudienceError:
            await callback.answer(staff.t.plain("broadcast.stale"), show_alert=True)
            return
        await self._choose(callback, state, staff, audience)

    async def _choose(
        self, callback: CallbackQuery, state: FSMContext, staff: StaffContext, audience: Audience
    ) -> None:
        members = await count_members(staff.session, audience, marketing=self.marketing)
        await callback.answer()
        if not isinstance(callback.message, Message):
            return
        if members == 0:
            # Stay on this step: staff picks another audience from the same keyboard.
            await callback.message.answer(staff.t("broadcast.empty_audience"))
            return
        await self.chosen(callback.message, state, staff, audience, members)


async def stored_audience(state: FSMContext) -> Audience | None:
    """The audience a flow stored when it was chosen, or None when the step expired."""
    try:
        return Audience.from_spec((await state.get_data()).get("audience") or {})
    except AudienceError:
        return None
